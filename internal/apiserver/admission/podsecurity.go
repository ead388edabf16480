package admission

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// NamespaceLookup finds a namespace by name; a missing one is a NotFound
// error.
type NamespaceLookup interface {
	GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

// PodLister lists the pods of a namespace. The pods may be shared with a
// cache: the caller only reads them.
type PodLister interface {
	ListPods(ctx context.Context, namespace string) ([]*corev1.Pod, error)
}

var (
	namespacesResource = corev1.Resource("namespaces")
	podsResource       = corev1.Resource("pods")
)

// podSpecResources are the workload resources whose pod template is
// checked (warnings only), as upstream's default pod spec extractor.
var podSpecResources = map[schema.GroupResource]bool{
	corev1.Resource("replicationcontrollers"): true,
	corev1.Resource("podtemplates"):           true,
	appsv1.Resource("replicasets"):            true,
	appsv1.Resource("deployments"):            true,
	appsv1.Resource("statefulsets"):           true,
	appsv1.Resource("daemonsets"):             true,
	batchv1.Resource("jobs"):                  true,
	batchv1.Resource("cronjobs"):              true,
}

// ignoredPodSubresources are pod writes that cannot change what the
// policy checks.
var ignoredPodSubresources = map[string]bool{
	"exec": true, "attach": true, "binding": true, "eviction": true,
	"log": true, "portforward": true, "proxy": true, "status": true,
}

// PodSecurity is upstream's PodSecurity plugin with its default
// configuration (every mode privileged:latest unless the namespace's
// pod-security.kubernetes.io labels say otherwise, no exemptions). Pods
// violating the enforce level are refused; the warn level becomes
// warnings, for pods and for the pod templates of workload resources.
// Audit annotations are not recorded.
type PodSecurity struct {
	namespaces NamespaceLookup
	pods       PodLister
	evaluator  policy.Evaluator
	// evaluatorErr is set when the checks could not be loaded; the plugin
	// then refuses what it would have checked rather than let it through.
	evaluatorErr error
	defaults     psapi.Policy
	maxPods      int
}

// namespaceMaxPodsToCheck bounds the pods checked against a namespace's
// new enforce level, as upstream.
const namespaceMaxPodsToCheck = 3000

// NewPodSecurity builds the plugin. Without namespaces every namespace
// has the default (privileged) policy; without pods a new enforce level
// is not checked against existing pods.
func NewPodSecurity(namespaces NamespaceLookup, pods PodLister) *PodSecurity {
	privileged := psapi.LevelVersion{Level: psapi.LevelPrivileged, Version: psapi.LatestVersion()}
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		slog.Error("PodSecurity: loading the Pod Security Standards checks", "err", err)
	}
	return &PodSecurity{
		namespaces: namespaces, pods: pods, evaluator: ev, evaluatorErr: err,
		defaults: psapi.Policy{Enforce: privileged, Audit: privileged, Warn: privileged},
		maxPods:  namespaceMaxPodsToCheck,
	}
}

// Name implements Validator.
func (*PodSecurity) Name() string { return "PodSecurity" }

// Validate implements Validator.
func (p *PodSecurity) Validate(ctx context.Context, a *Attributes) error {
	if a.Operation != Create && a.Operation != Update {
		return nil
	}
	gr := a.Resource.GroupResource()
	switch {
	case gr == namespacesResource:
		return p.validateNamespace(ctx, a)
	case gr == podsResource:
		return p.validatePod(ctx, a)
	case podSpecResources[gr]:
		return p.validateWorkload(ctx, a)
	}
	return nil
}

func (p *PodSecurity) validateNamespace(ctx context.Context, a *Attributes) error {
	if a.Subresource != "" {
		return nil
	}
	ns, ok := a.Object.(*corev1.Namespace)
	if !ok {
		return apierrors.NewBadRequest("failed to decode namespace")
	}
	newPolicy, newErrs := psapi.PolicyToEvaluate(ns.Labels, p.defaults)
	if a.Operation == Create {
		if len(newErrs) > 0 {
			return apierrors.NewInvalid(a.Kind.GroupKind(), a.Name, newErrs)
		}
		return nil
	}
	old, ok := a.OldObject.(*corev1.Namespace)
	if !ok {
		return apierrors.NewBadRequest("failed to decode old namespace")
	}
	oldPolicy, oldErrs := psapi.PolicyToEvaluate(old.Labels, p.defaults)
	// As upstream, labels that were already invalid in the same way may
	// stay, so unrelated namespace updates keep working.
	if len(newErrs) > 0 && (len(oldErrs) == 0 || !reflect.DeepEqual(newErrs, oldErrs)) {
		return apierrors.NewInvalid(a.Kind.GroupKind(), a.Name, newErrs)
	}
	if newPolicy.Enforce == oldPolicy.Enforce || newPolicy.Enforce.Level == psapi.LevelPrivileged {
		return nil
	}
	if newPolicy.Enforce.Version == oldPolicy.Enforce.Version &&
		psapi.CompareLevels(newPolicy.Enforce.Level, oldPolicy.Enforce.Level) < 1 {
		return nil // no stricter than before
	}
	if p.evaluatorErr == nil && p.pods != nil {
		a.Warnings = append(a.Warnings, p.existingPodWarnings(ctx, ns.Name, newPolicy.Enforce)...)
	}
	return nil
}

func (p *PodSecurity) validatePod(ctx context.Context, a *Attributes) error {
	if ignoredPodSubresources[a.Subresource] {
		return nil
	}
	nsPolicy, err := p.namespacePolicy(ctx, a.Namespace)
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("failed to lookup namespace %q", a.Namespace))
	}
	if nsPolicy.FullyPrivileged() {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return apierrors.NewBadRequest("failed to decode pod")
	}
	if a.Operation == Update {
		old, ok := a.OldObject.(*corev1.Pod)
		if !ok {
			return apierrors.NewBadRequest("failed to decode old pod")
		}
		if !significantPodUpdate(pod, old) {
			return nil
		}
	}
	return p.evaluate(a, nsPolicy, &pod.ObjectMeta, &pod.Spec, true)
}

func (p *PodSecurity) validateWorkload(ctx context.Context, a *Attributes) error {
	if a.Subresource != "" {
		return nil
	}
	nsPolicy, err := p.namespacePolicy(ctx, a.Namespace)
	if err != nil {
		// As upstream: a workload is never refused for this, only not checked.
		slog.Debug("PodSecurity: namespace lookup", "namespace", a.Namespace, "err", err)
		return nil
	}
	if nsPolicy.Warn.Level == psapi.LevelPrivileged {
		return nil
	}
	meta, spec := podTemplateOf(a.Object)
	if meta == nil && spec == nil {
		return nil
	}
	return p.evaluate(a, nsPolicy, meta, spec, false)
}

// namespacePolicy is the policy the namespace's labels select. Invalid
// labels select restricted:latest for enforce (upstream's fail-closed
// reading), privileged for warn and audit.
func (p *PodSecurity) namespacePolicy(ctx context.Context, namespace string) (psapi.Policy, error) {
	if p.namespaces == nil {
		return p.defaults, nil
	}
	ns, err := p.namespaces.GetNamespace(ctx, namespace)
	if err != nil {
		return psapi.Policy{}, err
	}
	nsPolicy, _ := psapi.PolicyToEvaluate(ns.Labels, p.defaults)
	return nsPolicy, nil
}

// evaluate checks a pod (or template) against the enforce level (when
// enforce is set) and the warn level, refusing or warning as upstream.
func (p *PodSecurity) evaluate(a *Attributes, nsPolicy psapi.Policy, meta *metav1.ObjectMeta, spec *corev1.PodSpec, enforce bool) error {
	if p.evaluatorErr != nil {
		return apierrors.NewInternalError(fmt.Errorf("PodSecurity checks unavailable: %w", p.evaluatorErr))
	}
	var enforced *policy.AggregateCheckResult
	if enforce {
		r := policy.AggregateCheckResults(p.evaluator.EvaluatePod(nsPolicy.Enforce, meta, spec))
		if !r.Allowed {
			return forbidden(a, fmt.Errorf("violates PodSecurity %q: %s", nsPolicy.Enforce.String(), r.ForbiddenDetail()))
		}
		enforced = &r
	}
	warn := enforced
	if warn == nil || nsPolicy.Warn != nsPolicy.Enforce {
		r := policy.AggregateCheckResults(p.evaluator.EvaluatePod(nsPolicy.Warn, meta, spec))
		warn = &r
	}
	if !warn.Allowed {
		a.Warnings = append(a.Warnings, fmt.Sprintf("would violate PodSecurity %q: %s", nsPolicy.Warn.String(), warn.ForbiddenDetail()))
	}
	return nil
}

// podTemplateOf returns the pod template of a workload object (nil, nil
// when it has none).
func podTemplateOf(obj any) (*metav1.ObjectMeta, *corev1.PodSpec) {
	var t *corev1.PodTemplateSpec
	switch o := obj.(type) {
	case *corev1.PodTemplate:
		t = &o.Template
	case *corev1.ReplicationController:
		t = o.Spec.Template
	case *appsv1.ReplicaSet:
		t = &o.Spec.Template
	case *appsv1.Deployment:
		t = &o.Spec.Template
	case *appsv1.DaemonSet:
		t = &o.Spec.Template
	case *appsv1.StatefulSet:
		t = &o.Spec.Template
	case *batchv1.Job:
		t = &o.Spec.Template
	case *batchv1.CronJob:
		t = &o.Spec.JobTemplate.Spec.Template
	}
	if t == nil {
		return nil, nil
	}
	return &t.ObjectMeta, &t.Spec
}

// significantPodUpdate reports whether an update changes what the policy
// checks, as upstream judges it: containers added or removed, an image
// changed, or an ephemeral container added or changed. Other pod fields
// the checks read are immutable.
func significantPodUpdate(pod, old *corev1.Pod) bool {
	if len(pod.Spec.Containers) != len(old.Spec.Containers) ||
		len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		return true
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Image != old.Spec.Containers[i].Image {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Image != old.Spec.InitContainers[i].Image {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		found := false
		for _, oc := range old.Spec.EphemeralContainers {
			if oc.Name == c.Name {
				if oc.Image != c.Image {
					return true
				}
				found = true
				break
			}
		}
		if !found {
			return true
		}
	}
	return false
}
