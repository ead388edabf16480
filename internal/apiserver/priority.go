package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// systemPriorityClasses exist in every cluster, as upstream creates them.
var systemPriorityClasses = []struct {
	name  string
	value int32
	desc  string
}{
	{"system-node-critical", 2000001000, "Used for system critical pods that must not be moved from their current node."},
	{"system-cluster-critical", 2000000000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."},
}

var priorityClassGVR = schedulingv1.SchemeGroupVersion.WithResource("priorityclasses")

func (s *Server) bootstrapPriorityClasses(ctx context.Context) error {
	res := s.resources[priorityClassGVR]
	if res == nil {
		return nil
	}
	for _, c := range systemPriorityClasses {
		pc := &schedulingv1.PriorityClass{
			TypeMeta:    metav1.TypeMeta{APIVersion: "scheduling.k8s.io/v1", Kind: "PriorityClass"},
			ObjectMeta:  metav1.ObjectMeta{Name: c.name, UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now()},
			Value:       c.value,
			Description: c.desc,
		}
		res.Default(pc)
		if _, err := res.create(ctx, pc); err != nil && !isAlreadyExists(err) {
			return fmt.Errorf("create priority class %s: %w", c.name, err)
		}
	}
	return nil
}

// admitPriority resolves a new pod's priorityClassName into spec.priority
// and spec.preemptionPolicy (upstream's Priority admission plugin).
func (q *request) admitPriority(pod *corev1.Pod) error {
	res := q.resources[priorityClassGVR]
	if res == nil {
		return nil
	}
	var class *schedulingv1.PriorityClass
	if name := pod.Spec.PriorityClassName; name != "" {
		obj, _, err := res.get(q.ctx, "", name)
		if apierrors.IsNotFound(err) {
			return apierrors.NewForbidden(q.res.gr, pod.Name, fmt.Errorf("no PriorityClass with name %s was found", name))
		}
		if err != nil {
			return err
		}
		class = obj.(*schedulingv1.PriorityClass)
	} else {
		entries, _ := res.cache.List(res.prefix, nil)
		for _, e := range entries {
			if pc := e.Obj.(*schedulingv1.PriorityClass); pc.GlobalDefault && (class == nil || pc.Value > class.Value) {
				class = pc
			}
		}
	}
	var value int32
	policy := corev1.PreemptLowerPriority
	if class != nil {
		value = class.Value
		if class.PreemptionPolicy != nil {
			policy = *class.PreemptionPolicy
		}
		if pod.Spec.PriorityClassName == "" {
			pod.Spec.PriorityClassName = class.Name
		}
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != value {
		return apierrors.NewForbidden(q.res.gr, pod.Name, fmt.Errorf(
			"the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name",
			*pod.Spec.Priority, value))
	}
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != policy {
		return apierrors.NewInvalid(q.res.gvk.GroupKind(), pod.Name, field.ErrorList{field.Invalid(
			field.NewPath("spec", "preemptionPolicy"), *pod.Spec.PreemptionPolicy, "must match the preemptionPolicy of the PriorityClass")})
	}
	pod.Spec.Priority = &value
	pod.Spec.PreemptionPolicy = &policy
	return nil
}

// defaultTolerationSeconds is how long pods stay on a not-ready or
// unreachable node before eviction (upstream's DefaultTolerationSeconds).
var defaultTolerationSeconds int64 = 300

// addDefaultTolerations lets a new pod ride out short node outages, as
// upstream's DefaultTolerationSeconds admission plugin does.
func addDefaultTolerations(pod *corev1.Pod) {
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		has := false
		for _, t := range pod.Spec.Tolerations {
			if (t.Key == key || (t.Key == "" && t.Operator == corev1.TolerationOpExists)) &&
				(t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
				has = true
			}
		}
		if !has {
			secs := defaultTolerationSeconds
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs,
			})
		}
	}
}
