package admission

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// RuntimeClassLookup finds a RuntimeClass by name; a missing one is a
// NotFound error.
type RuntimeClassLookup interface {
	GetRuntimeClass(ctx context.Context, name string) (*nodev1.RuntimeClass, error)
}

// RuntimeClass applies a pod's RuntimeClass at creation, as upstream's
// plugin of the same name: the class's overhead becomes spec.overhead and
// its scheduling constraints are merged into the pod's node selector and
// tolerations. It both mutates and validates (a pod whose overhead differs
// from its class's is refused).
type RuntimeClass struct {
	classes RuntimeClassLookup
}

// NewRuntimeClass builds the plugin.
func NewRuntimeClass(classes RuntimeClassLookup) *RuntimeClass {
	return &RuntimeClass{classes: classes}
}

// Name implements Mutator and Validator.
func (*RuntimeClass) Name() string { return "RuntimeClass" }

// Admit implements Mutator.
func (p *RuntimeClass) Admit(ctx context.Context, a *Attributes) error {
	pod, rc, err := p.prepare(ctx, a)
	if pod == nil || err != nil {
		return err
	}
	if rc == nil {
		return nil
	}
	if rc.Overhead != nil {
		if len(pod.Spec.Overhead) > 0 && !equality.Semantic.DeepEqual(rc.Overhead.PodFixed, pod.Spec.Overhead) {
			return forbidden(a, errors.New("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"))
		}
		pod.Spec.Overhead = rc.Overhead.PodFixed.DeepCopy()
	}
	if s := rc.Scheduling; s != nil {
		if pod.Spec.NodeSelector == nil {
			pod.Spec.NodeSelector = copyStringMap(s.NodeSelector)
		} else {
			for k, v := range s.NodeSelector {
				if pv, ok := pod.Spec.NodeSelector[k]; ok && pv != v {
					return forbidden(a, fmt.Errorf("conflict: runtimeClass.scheduling.nodeSelector[%s] = %s; pod.spec.nodeSelector[%s] = %s", k, v, k, pv))
				}
				pod.Spec.NodeSelector[k] = v
			}
		}
		pod.Spec.Tolerations = mergeTolerations(pod.Spec.Tolerations, s.Tolerations)
	}
	return nil
}

// Validate implements Validator: after other plugins ran, the pod's
// overhead must still be exactly its class's (or absent without one).
func (p *RuntimeClass) Validate(ctx context.Context, a *Attributes) error {
	pod, rc, err := p.prepare(ctx, a)
	if pod == nil || err != nil {
		return err
	}
	if rc != nil && rc.Overhead != nil {
		if !equality.Semantic.DeepEqual(rc.Overhead.PodFixed, pod.Spec.Overhead) {
			return forbidden(a, errors.New("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"))
		}
		return nil
	}
	if pod.Spec.Overhead != nil {
		return forbidden(a, errors.New("pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"))
	}
	return nil
}

// prepare returns the pod being created and its RuntimeClass (nil when it
// names none); pod is nil when the plugin does not apply to the write.
func (p *RuntimeClass) prepare(ctx context.Context, a *Attributes) (*corev1.Pod, *nodev1.RuntimeClass, error) {
	if a.Operation != Create || a.Subresource != "" || a.Resource.GroupResource() != (schema.GroupResource{Resource: "pods"}) {
		return nil, nil, nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil, nil, apierrors.NewBadRequest("Resource was marked with kind Pod but was unable to be converted")
	}
	if pod.Spec.RuntimeClassName == nil {
		return pod, nil, nil
	}
	rc, err := p.classes.GetRuntimeClass(ctx, *pod.Spec.RuntimeClassName)
	if apierrors.IsNotFound(err) {
		return pod, nil, forbidden(a, fmt.Errorf("pod rejected: RuntimeClass %q not found", *pod.Spec.RuntimeClassName))
	}
	if err != nil {
		return pod, nil, err
	}
	return pod, rc, nil
}

func copyStringMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// mergeTolerations appends extra to tolerations, leaving out any
// toleration another one in the result already covers, as upstream does.
func mergeTolerations(tolerations, extra []corev1.Toleration) []corev1.Toleration {
	all := append(append([]corev1.Toleration{}, tolerations...), extra...)
	var merged []corev1.Toleration
next:
	for i, t := range all {
		for _, m := range merged {
			if coversToleration(m, t) {
				continue next
			}
		}
		for _, later := range all[i+1:] {
			// Of two equal tolerations the first is kept.
			if !equality.Semantic.DeepEqual(t, later) && coversToleration(later, t) {
				continue next
			}
		}
		merged = append(merged, t)
	}
	return merged
}

// coversToleration reports whether s tolerates every taint t tolerates.
func coversToleration(s, t corev1.Toleration) bool {
	if equality.Semantic.DeepEqual(s, t) {
		return true
	}
	if t.Key != s.Key && (s.Key != "" || s.Operator != corev1.TolerationOpExists) {
		return false
	}
	if t.Effect != s.Effect && s.Effect != "" {
		return false
	}
	if s.Effect == corev1.TaintEffectNoExecute {
		// A bounded stay does not cover a longer (or unbounded) one.
		if s.TolerationSeconds != nil && (t.TolerationSeconds == nil || *t.TolerationSeconds > *s.TolerationSeconds) {
			return false
		}
	}
	switch s.Operator {
	case corev1.TolerationOpEqual, "":
		return t.Operator == corev1.TolerationOpEqual && t.Value == s.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}
