package admission

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// LimitRangerAnnotation records on a pod which requests and limits the
// LimitRanger plugin defaulted, as upstream's.
const LimitRangerAnnotation = "kubernetes.io/limit-ranger"

// LimitRangeLookup lists a namespace's LimitRanges (the API server's
// cache). The objects are shared and must not be modified.
type LimitRangeLookup interface {
	ListLimitRanges(namespace string) []*corev1.LimitRange
}

// LimitRanger applies a namespace's LimitRanges, as upstream's plugin: on
// pod create it defaults missing container requests and limits (mutating),
// then refuses pods and PersistentVolumeClaims outside the min, max and
// maximum limit/request ratio (validating). Namespaces without LimitRanges
// are left alone.
type LimitRanger struct {
	lookup LimitRangeLookup
}

// NewLimitRanger returns the plugin reading LimitRanges from lookup; a nil
// lookup disables it.
func NewLimitRanger(lookup LimitRangeLookup) *LimitRanger {
	return &LimitRanger{lookup: lookup}
}

// Name implements Mutator and Validator.
func (*LimitRanger) Name() string { return "LimitRanger" }

// applies tells whether a write is one upstream's plugin looks at: pods on
// create (their containers are immutable afterwards) and PVCs on create
// and update (an update may expand the claim); never subresources.
func (p *LimitRanger) applies(a *Attributes) bool {
	if p.lookup == nil || a.Subresource != "" || a.Resource.Group != "" {
		return false
	}
	switch a.Resource.Resource {
	case "pods":
		return a.Operation == Create
	case "persistentvolumeclaims":
		return a.Operation == Create || a.Operation == Update
	}
	return false
}

// Admit implements Mutator: it fills defaults from Container limits.
func (p *LimitRanger) Admit(_ context.Context, a *Attributes) error {
	if !p.applies(a) || a.Resource.Resource != "pods" {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return apierrors.NewBadRequest(fmt.Sprintf("expected a Pod, got %T", a.Object))
	}
	ranges := p.ranges(a)
	if len(ranges) == 0 {
		return nil
	}
	// Upstream decodes a pod with its defaults, so requests already copy
	// unset ones from limits when LimitRanger runs; Skiff defaults later.
	for i := range pod.Spec.InitContainers {
		requestsFromLimits(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		requestsFromLimits(&pod.Spec.Containers[i])
	}
	for _, lr := range ranges {
		defaultPodResources(pod, containerDefaults(lr))
	}
	return nil
}

// Validate implements Validator: it enforces every LimitRange of the
// namespace; the first one violated refuses the write with all its
// violations.
func (p *LimitRanger) Validate(_ context.Context, a *Attributes) error {
	if !p.applies(a) {
		return nil
	}
	for _, lr := range p.ranges(a) {
		var err error
		switch o := a.Object.(type) {
		case *corev1.Pod:
			err = validatePodLimits(lr, o)
		case *corev1.PersistentVolumeClaim:
			err = validateClaimLimits(lr, o)
		default:
			return apierrors.NewBadRequest(fmt.Sprintf("unexpected object %T for %s", a.Object, a.Resource.Resource))
		}
		if err != nil {
			return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, err)
		}
	}
	return nil
}

// ranges lists the namespace's LimitRanges once per request: the cache
// may take in a new LimitRange between the mutating and the validating
// phase, and a pod not defaulted by a range must not be refused by it.
func (p *LimitRanger) ranges(a *Attributes) []*corev1.LimitRange {
	if !a.limitRangesRead {
		a.limitRanges, a.limitRangesRead = p.lookup.ListLimitRanges(a.Namespace), true
	}
	return a.limitRanges
}

// requestsFromLimits copies limits to unset requests, as upstream's pod
// defaulting.
func requestsFromLimits(c *corev1.Container) {
	for k, v := range c.Resources.Limits {
		if _, ok := c.Resources.Requests[k]; ok {
			continue
		}
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		c.Resources.Requests[k] = v.DeepCopy()
	}
}

// containerDefaults are the requests and limits a LimitRange's Container
// items give containers. It applies upstream's LimitRange defaulting
// (limit from max, request from limit, then from min) so that stored
// ranges missing those defaults still act as upstream's do.
func containerDefaults(lr *corev1.LimitRange) corev1.ResourceRequirements {
	d := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		limits := corev1.ResourceList{}
		requests := corev1.ResourceList{}
		for k, v := range item.Max {
			limits[k] = v
		}
		for k, v := range item.Default {
			limits[k] = v
		}
		for k, v := range item.Min {
			requests[k] = v
		}
		for k, v := range limits {
			requests[k] = v
		}
		for k, v := range item.DefaultRequest {
			requests[k] = v
		}
		for k, v := range limits {
			d.Limits[k] = v.DeepCopy()
		}
		for k, v := range requests {
			d.Requests[k] = v.DeepCopy()
		}
	}
	return d
}

// defaultPodResources fills each container's missing requests and limits
// from d and records what it set in the pod's annotation.
func defaultPodResources(pod *corev1.Pod, d corev1.ResourceRequirements) {
	var notes []string
	for i := range pod.Spec.Containers {
		notes = append(notes, defaultContainer(&pod.Spec.Containers[i], d, "container")...)
	}
	for i := range pod.Spec.InitContainers {
		notes = append(notes, defaultContainer(&pod.Spec.InitContainers[i], d, "init container")...)
	}
	if len(notes) == 0 {
		return
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[LimitRangerAnnotation] = "LimitRanger plugin set: " + strings.Join(notes, "; ")
}

func defaultContainer(c *corev1.Container, d corev1.ResourceRequirements, what string) []string {
	var notes []string
	if set := fillMissing(&c.Resources.Requests, d.Requests); len(set) > 0 {
		notes = append(notes, fmt.Sprintf("%s request for %s %s", strings.Join(set, ", "), what, c.Name))
	}
	if set := fillMissing(&c.Resources.Limits, d.Limits); len(set) > 0 {
		notes = append(notes, fmt.Sprintf("%s limit for %s %s", strings.Join(set, ", "), what, c.Name))
	}
	return notes
}

// fillMissing adds to *dst the resources of src it lacks and returns
// their sorted names.
func fillMissing(dst *corev1.ResourceList, src corev1.ResourceList) []string {
	if *dst == nil {
		// Upstream leaves empty (not absent) lists on defaulted pods.
		*dst = corev1.ResourceList{}
	}
	var set []string
	for k, v := range src {
		if _, ok := (*dst)[k]; !ok {
			(*dst)[k] = v.DeepCopy()
			set = append(set, string(k))
		}
	}
	sort.Strings(set)
	return set
}

// validatePodLimits checks a pod against a LimitRange's Container and Pod
// items.
func validatePodLimits(lr *corev1.LimitRange, pod *corev1.Pod) error {
	var errs []error
	for _, item := range lr.Spec.Limits {
		kind := string(item.Type)
		switch item.Type {
		case corev1.LimitTypeContainer:
			for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
				for _, c := range cs {
					errs = append(errs, checkBounds(kind, item, c.Resources.Requests, c.Resources.Limits)...)
				}
			}
		case corev1.LimitTypePod:
			errs = append(errs, checkBounds(kind, item, podRequests(pod), podLimits(pod))...)
		}
	}
	return utilerrors.NewAggregate(errs)
}

// checkBounds applies an item's min, max and ratio to requests and limits.
func checkBounds(kind string, item corev1.LimitRangeItem, requests, limits corev1.ResourceList) []error {
	var errs []error
	for _, k := range sortedNames(item.Min) {
		if err := checkMin(kind, k, item.Min[k], requests, limits); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range sortedNames(item.Max) {
		if err := checkMax(kind, k, item.Max[k], requests, limits); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range sortedNames(item.MaxLimitRequestRatio) {
		if err := checkRatio(kind, k, item.MaxLimitRequestRatio[k], requests, limits); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// validateClaimLimits checks a claim's storage requests against a
// LimitRange's PersistentVolumeClaim items; claims have no defaults and
// their limits are not user input.
func validateClaimLimits(lr *corev1.LimitRange, pvc *corev1.PersistentVolumeClaim) error {
	var errs []error
	for _, item := range lr.Spec.Limits {
		if item.Type != corev1.LimitTypePersistentVolumeClaim {
			continue
		}
		kind := string(item.Type)
		req := pvc.Spec.Resources.Requests
		for _, k := range sortedNames(item.Min) {
			if err := checkMin(kind, k, item.Min[k], req, nil); err != nil {
				errs = append(errs, err)
			}
		}
		for _, k := range sortedNames(item.Max) {
			if err := checkMaxRequest(kind, k, item.Max[k], req); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return utilerrors.NewAggregate(errs)
}

func checkMin(kind string, name corev1.ResourceName, min resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, m := comparable(req, lim, min)
	switch {
	case !hasReq:
		return fmt.Errorf("minimum %s usage per %s is %s.  No request is specified", name, kind, min.String())
	case r < m:
		return fmt.Errorf("minimum %s usage per %s is %s, but request is %s", name, kind, min.String(), req.String())
	case hasLim && l < m:
		return fmt.Errorf("minimum %s usage per %s is %s, but limit is %s", name, kind, min.String(), lim.String())
	}
	return nil
}

func checkMax(kind string, name corev1.ResourceName, max resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, m := comparable(req, lim, max)
	switch {
	case !hasLim:
		return fmt.Errorf("maximum %s usage per %s is %s.  No limit is specified", name, kind, max.String())
	case l > m:
		return fmt.Errorf("maximum %s usage per %s is %s, but limit is %s", name, kind, max.String(), lim.String())
	case hasReq && r > m:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, max.String(), req.String())
	}
	return nil
}

// checkMaxRequest is checkMax for claims, whose maximum bounds the request.
func checkMaxRequest(kind string, name corev1.ResourceName, max resource.Quantity, requests corev1.ResourceList) error {
	req, hasReq := requests[name]
	r, _, m := comparable(req, resource.Quantity{}, max)
	switch {
	case !hasReq:
		return fmt.Errorf("maximum %s usage per %s is %s.  No request is specified", name, kind, max.String())
	case r > m:
		return fmt.Errorf("maximum %s usage per %s is %s, but request is %s", name, kind, max.String(), req.String())
	}
	return nil
}

func checkRatio(kind string, name corev1.ResourceName, ratio resource.Quantity, requests, limits corev1.ResourceList) error {
	req, hasReq := requests[name]
	lim, hasLim := limits[name]
	r, l, _ := comparable(req, lim, ratio)
	if !hasReq || r == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", name, kind, ratio.String())
	}
	if !hasLim || l == 0 {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but no limit is specified or limit is 0", name, kind, ratio.String())
	}
	observed := float64(l) / float64(r)
	scaled, allowed := observed, float64(ratio.Value())
	if ratio.Value() <= resource.MaxMilliValue {
		// Compare in thousandths so fractional ratios such as 1.5 count.
		scaled, allowed = observed*1000, float64(ratio.MilliValue())
	}
	if scaled > allowed {
		return fmt.Errorf("%s max limit to request ratio per %s is %s, but provided ratio is %f", name, kind, ratio.String(), observed)
	}
	return nil
}

// comparable returns the three quantities as integers of one scale:
// milli-units when none would overflow them, whole units otherwise.
func comparable(a, b, c resource.Quantity) (int64, int64, int64) {
	x, y, z := a.Value(), b.Value(), c.Value()
	if x <= resource.MaxMilliValue && y <= resource.MaxMilliValue && z <= resource.MaxMilliValue {
		return a.MilliValue(), b.MilliValue(), c.MilliValue()
	}
	return x, y, z
}

// podRequests totals a pod's requests as the scheduler sees them: regular
// and sidecar containers add up; each other init container runs alone
// (beside the sidecars started before it), so the pod needs the largest.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
	return podTotal(pod, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Requests })
}

// podLimits totals a pod's limits the same way.
func podLimits(pod *corev1.Pod) corev1.ResourceList {
	return podTotal(pod, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Limits })
}

func podTotal(pod *corev1.Pod, of func(*corev1.Container) corev1.ResourceList) corev1.ResourceList {
	total := corev1.ResourceList{}
	for i := range pod.Spec.Containers {
		addList(total, of(&pod.Spec.Containers[i]))
	}
	sidecars, initPeak := corev1.ResourceList{}, corev1.ResourceList{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addList(total, of(c))
			addList(sidecars, of(c))
			maxList(initPeak, sidecars)
			continue
		}
		running := corev1.ResourceList{}
		addList(running, of(c))
		addList(running, sidecars)
		maxList(initPeak, running)
	}
	maxList(total, initPeak)
	return total
}

func addList(dst, src corev1.ResourceList) {
	for k, v := range src {
		sum, ok := dst[k]
		if !ok {
			dst[k] = v.DeepCopy()
			continue
		}
		sum.Add(v)
		dst[k] = sum
	}
}

func maxList(dst, src corev1.ResourceList) {
	for k, v := range src {
		if cur, ok := dst[k]; !ok || v.Cmp(cur) > 0 {
			dst[k] = v.DeepCopy()
		}
	}
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for k := range l {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
