package apis

import (
	"fmt"
	"reflect"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The pods/ephemeralcontainers and pods/resize subresources each change
// one slice of a pod; everything else a client sends is dropped, as
// upstream's strategies for them do. The functions here are those
// strategies: Prepare* builds the object to store from the client's and
// the stored one, Validate* checks the result.

// mirrorPodAnnotationKey marks the API copy of a kubelet's static pod.
const mirrorPodAnnotationKey = "kubernetes.io/config.mirror"

// PrepareEphemeralContainersUpdate returns old with pod's ephemeral
// containers (defaulted); every other change is discarded.
func PrepareEphemeralContainersUpdate(pod, old *corev1.Pod) *corev1.Pod {
	next := old.DeepCopy()
	next.ResourceVersion = pod.ResourceVersion
	next.Spec.EphemeralContainers = pod.Spec.EphemeralContainers
	for i := range next.Spec.EphemeralContainers {
		defaultContainer((*corev1.Container)(&next.Spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	return next
}

// PreparePodResize returns old with the resources and resize policies of
// pod's containers; every other change is discarded. When containers were
// added, removed, renamed or reordered the spec is kept as sent, so that
// validation refuses it.
func PreparePodResize(pod, old *corev1.Pod) *corev1.Pod {
	next := old.DeepCopy()
	next.ResourceVersion = pod.ResourceVersion
	cs, ok1 := mergeResizable(pod.Spec.Containers, old.Spec.Containers)
	ics, ok2 := mergeResizable(pod.Spec.InitContainers, old.Spec.InitContainers)
	if !ok1 || !ok2 {
		next.Spec = *pod.Spec.DeepCopy()
		return next
	}
	next.Spec.Containers, next.Spec.InitContainers = cs, ics
	return next
}

func mergeResizable(cs, old []corev1.Container) ([]corev1.Container, bool) {
	if len(cs) != len(old) {
		return nil, false
	}
	out := make([]corev1.Container, len(old))
	for i := range old {
		if cs[i].Name != old[i].Name {
			return nil, false
		}
		out[i] = *old[i].DeepCopy()
		out[i].Resources = *cs[i].Resources.DeepCopy()
		out[i].ResizePolicy = append([]corev1.ContainerResizePolicy(nil), cs[i].ResizePolicy...)
	}
	return out, true
}

// ephemeralAllowed are the EphemeralContainerCommon fields an ephemeral
// container may set: nothing that makes it part of the workload (ports,
// probes, lifecycle, resources).
var ephemeralAllowed = sets.New("Name", "Image", "Command", "Args", "WorkingDir", "EnvFrom", "Env",
	"VolumeMounts", "VolumeDevices", "TerminationMessagePath", "TerminationMessagePolicy",
	"ImagePullPolicy", "SecurityContext", "Stdin", "StdinOnce", "TTY")

// ValidateEphemeralContainersUpdate checks an update through
// pods/ephemeralcontainers: containers may only be added, each valid.
func ValidateEphemeralContainersUpdate(pod, old *corev1.Pod) field.ErrorList {
	if _, ok := old.Annotations[mirrorPodAnnotationKey]; ok {
		return field.ErrorList{field.Forbidden(field.NewPath(""), "static pods do not support ephemeral containers")}
	}
	sp := field.NewPath("spec", "ephemeralContainers")
	var errs field.ErrorList
	others, all := sets.New[string](), sets.New[string]()
	for _, c := range append(append([]corev1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...) {
		others.Insert(c.Name)
		all.Insert(c.Name)
	}
	vols := sets.New[string]()
	for _, v := range pod.Spec.Volumes {
		vols.Insert(v.Name)
	}
	for i, ec := range pod.Spec.EphemeralContainers {
		ip := sp.Index(i)
		errs = append(errs, validateEphemeralContainer(&ec, vols, ip)...)
		if all.Has(ec.Name) {
			errs = append(errs, field.Duplicate(ip.Child("name"), ec.Name))
		} else {
			all.Insert(ec.Name)
		}
		if ec.TargetContainerName != "" && !others.Has(ec.TargetContainerName) {
			errs = append(errs, field.NotFound(ip.Child("targetContainerName"), ec.TargetContainerName))
		}
	}
	// Existing ones may be neither removed nor changed (patches reorder,
	// so match by name).
	byName := map[string]*corev1.EphemeralContainer{}
	for i := range pod.Spec.EphemeralContainers {
		byName[pod.Spec.EphemeralContainers[i].Name] = &pod.Spec.EphemeralContainers[i]
	}
	for _, prev := range old.Spec.EphemeralContainers {
		cur, ok := byName[prev.Name]
		switch {
		case !ok:
			errs = append(errs, field.Forbidden(sp, fmt.Sprintf("existing ephemeral containers %q may not be removed\n", prev.Name)))
		case !equality.Semantic.DeepEqual(prev, *cur):
			errs = append(errs, field.Forbidden(sp, fmt.Sprintf("existing ephemeral containers %q may not be changed\n", prev.Name)))
		}
	}
	return errs
}

func validateEphemeralContainer(ec *corev1.EphemeralContainer, vols sets.Set[string], p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ec.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Label(ec.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), ec.Name, msg))
		}
	}
	if ec.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	}
	for j, m := range ec.VolumeMounts {
		mp := p.Child("volumeMounts").Index(j)
		if !vols.Has(m.Name) {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		if m.SubPath != "" {
			errs = append(errs, field.Forbidden(mp.Child("subPath"), "cannot be set for an Ephemeral Container"))
		}
		if m.SubPathExpr != "" {
			errs = append(errs, field.Forbidden(mp.Child("subPathExpr"), "cannot be set for an Ephemeral Container"))
		}
	}
	// Any set field outside the allowed list is refused, so fields added
	// to the API later are refused until considered.
	t, v := reflect.TypeOf(ec.EphemeralContainerCommon), reflect.ValueOf(ec.EphemeralContainerCommon)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if ephemeralAllowed.Has(f.Name) || v.Field(i).IsZero() {
			continue
		}
		r, n := utf8.DecodeRuneInString(f.Name)
		errs = append(errs, field.Forbidden(p.Child(string(unicode.ToLower(r))+f.Name[n:]), "cannot be set for an Ephemeral Container"))
	}
	return errs
}

// ValidatePodResize checks an update through pods/resize: only the CPU
// and memory of containers (and sidecars) may change, none may be
// removed, and the QoS class must stay.
func ValidatePodResize(pod, old *corev1.Pod) field.ErrorList {
	if _, ok := old.Annotations[mirrorPodAnnotationKey]; ok {
		return field.ErrorList{field.Forbidden(field.NewPath(""), "static pods cannot be resized")}
	}
	if old.Spec.OS != nil && old.Spec.OS.Name == corev1.Windows {
		return field.ErrorList{field.Forbidden(field.NewPath(""), "windows pods cannot be resized")}
	}
	sp := field.NewPath("spec")
	var errs field.ErrorList
	for i := range pod.Spec.Containers {
		errs = append(errs, validateResizedRequirements(&pod.Spec.Containers[i].Resources, sp.Child("containers").Index(i).Child("resources"))...)
	}
	oldQOS := old.Status.QOSClass
	if oldQOS == "" {
		oldQOS = ComputePodQOS(old)
	}
	if ComputePodQOS(pod) != oldQOS {
		errs = append(errs, field.Invalid(sp, pod.Status.QOSClass, "Pod QOS Class may not change as a result of resizing"))
	}
	if !resizeSupported(old) {
		errs = append(errs, field.Forbidden(sp, "Pod running on node without support for resize"))
	}
	if order := validateResizeOrdering(pod, old, sp); len(order) > 0 {
		return append(errs, order...)
	}
	for i := range old.Spec.InitContainers {
		if isSidecar(&old.Spec.InitContainers[i]) {
			errs = append(errs, validateNothingRemoved(&pod.Spec.InitContainers[i].Resources, &old.Spec.InitContainers[i].Resources,
				sp.Child("initContainers").Index(i).Child("resources"))...)
		}
	}
	for i := range old.Spec.Containers {
		errs = append(errs, validateNothingRemoved(&pod.Spec.Containers[i].Resources, &old.Spec.Containers[i].Resources,
			sp.Child("containers").Index(i).Child("resources"))...)
	}
	for i := range pod.Spec.Containers {
		if !onlyCPUMemoryChanged(&pod.Spec.Containers[i], &old.Spec.Containers[i]) {
			errs = append(errs, field.Forbidden(sp, "only cpu and memory resources are mutable"))
		}
	}
	for i := range pod.Spec.InitContainers {
		c, prev := &pod.Spec.InitContainers[i], &old.Spec.InitContainers[i]
		switch {
		case isSidecar(prev) && !onlyCPUMemoryChanged(c, prev):
			errs = append(errs, field.Forbidden(sp.Child("initContainers").Index(i), "only cpu and memory resources for init or sidecar containers are mutable"))
		case !isSidecar(prev) && !equality.Semantic.DeepEqual(c, prev):
			errs = append(errs, field.Forbidden(sp, "resources for non-sidecar init containers are immutable"))
		}
	}
	return errs
}

// resizeSupported reports whether the pod's node reports container
// resources (what a resize-capable kubelet does): with no running
// container it cannot be told, and the resize is allowed.
func resizeSupported(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running != nil {
			return cs.Resources != nil
		}
	}
	return true
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func validateResizeOrdering(pod, old *corev1.Pod, sp *field.Path) field.ErrorList {
	var errs field.ErrorList
	check := func(cs, prev []corev1.Container, p *field.Path, kind string) {
		if len(cs) != len(prev) {
			errs = append(errs, field.Forbidden(p, kind+" may not be added or removed on resize"))
			return
		}
		for i := range prev {
			if cs[i].Name != prev[i].Name {
				errs = append(errs, field.Forbidden(p.Index(i).Child("name"), kind+" may not be renamed or reordered on resize"))
			}
		}
	}
	check(pod.Spec.Containers, old.Spec.Containers, sp.Child("containers"), "containers")
	check(pod.Spec.InitContainers, old.Spec.InitContainers, sp.Child("initContainers"), "initContainers")
	return errs
}

func validateNothingRemoved(r, old *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if removedAny(r.Requests, old.Requests) {
		errs = append(errs, field.Forbidden(p.Child("requests"), "resource requests cannot be removed"))
	}
	if removedAny(r.Limits, old.Limits) {
		errs = append(errs, field.Forbidden(p.Child("limits"), "resource limits cannot be removed"))
	}
	return errs
}

func removedAny(l, old corev1.ResourceList) bool {
	for name := range old {
		if _, ok := l[name]; !ok {
			return true
		}
	}
	return false
}

// onlyCPUMemoryChanged reports whether c differs from old in nothing but
// CPU and memory requests and limits and the resize policy.
func onlyCPUMemoryChanged(c, old *corev1.Container) bool {
	a, b := c.DeepCopy(), old.DeepCopy()
	a.ResizePolicy, b.ResizePolicy = nil, nil
	for _, l := range []corev1.ResourceList{a.Resources.Requests, a.Resources.Limits, b.Resources.Requests, b.Resources.Limits} {
		delete(l, corev1.ResourceCPU)
		delete(l, corev1.ResourceMemory)
	}
	return equality.Semantic.DeepEqual(emptyToNil(a.Resources), emptyToNil(b.Resources)) &&
		equality.Semantic.DeepEqual(withoutResources(a), withoutResources(b))
}

func emptyToNil(r corev1.ResourceRequirements) corev1.ResourceRequirements {
	if len(r.Requests) == 0 {
		r.Requests = nil
	}
	if len(r.Limits) == 0 {
		r.Limits = nil
	}
	return r
}

func withoutResources(c *corev1.Container) *corev1.Container {
	c.Resources.Requests, c.Resources.Limits = nil, nil
	return c
}

// validateResizedRequirements checks new requests and limits: not
// negative, and requests no more than limits.
func validateResizedRequirements(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, q := range r.Limits {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("limits").Key(string(name)), q.String(), "must be greater than or equal to 0"))
		}
	}
	for name, q := range r.Requests {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), q.String(), "must be greater than or equal to 0"))
		}
		if l, ok := r.Limits[name]; ok && q.Cmp(l) > 0 {
			errs = append(errs, field.Invalid(p.Child("requests"), q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, l.String())))
		}
	}
	return errs
}

// ComputePodQOS returns the QoS class of a pod from its containers' CPU
// and memory requests and limits, as upstream computes it: each container
// has a class, and the pod has theirs when they agree (Burstable if not).
func ComputePodQOS(pod *corev1.Pod) corev1.PodQOSClass {
	var class corev1.PodQOSClass
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for i := range all {
		c := containerQOS(&all[i].Resources)
		switch {
		case c == corev1.PodQOSBurstable:
			return c
		case class == "":
			class = c
		case class != c:
			return corev1.PodQOSBurstable
		}
	}
	if class == "" {
		return corev1.PodQOSBestEffort
	}
	return class
}

// containerQOS is one container's class: Guaranteed when its CPU and
// memory requests equal non-zero limits, BestEffort when both are unset.
func containerQOS(r *corev1.ResourceRequirements) corev1.PodQOSClass {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	var class corev1.PodQOSClass
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		c := corev1.PodQOSGuaranteed
		switch {
		case !req.Equal(lim):
			return corev1.PodQOSBurstable
		case req.IsZero():
			c = corev1.PodQOSBestEffort
		}
		if class == "" {
			class = c
		} else if class != c {
			return corev1.PodQOSBurstable
		}
	}
	return class
}
