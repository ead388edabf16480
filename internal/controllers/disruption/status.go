package disruption

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// DeletionTimeout is how long a pod listed in status.disruptedPods (by the
// eviction path) has to show a deletionTimestamp; after that the entry is
// dropped and the pod counts as healthy again.
const DeletionTimeout = 2 * time.Minute

// scaleFinder resolves a pod's controller reference to the controller the
// budget counts (a Deployment rather than its ReplicaSet) and its desired
// replicas. found is false when ref names no controller this finder knows.
type scaleFinder func(ctx context.Context, ref *metav1.OwnerReference, namespace string) (uid types.UID, replicas int32, found bool, err error)

// expectedAndDesired computes status.expectedPods and status.desiredHealthy.
// A plain-integer minAvailable counts the selected pods as expected; every
// other form sums the scale of the pods' controllers, and then pods without
// a controller are returned as unmanaged (they cannot be counted).
func expectedAndDesired(ctx context.Context, pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, find scaleFinder) (expected, desired int32, unmanaged []string, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		expected, unmanaged, err = controllersScale(ctx, pods, find)
		if err != nil {
			return 0, 0, nil, err
		}
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("maxUnavailable: %w", err)
		}
		desired = max(expected-int32(maxUnavailable), 0)
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		expected, desired = int32(len(pods)), pdb.Spec.MinAvailable.IntVal
	case pdb.Spec.MinAvailable != nil:
		expected, unmanaged, err = controllersScale(ctx, pods, find)
		if err != nil {
			return 0, 0, nil, err
		}
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("minAvailable: %w", err)
		}
		desired = int32(minAvailable)
	}
	return expected, desired, unmanaged, nil
}

// controllersScale sums the desired replicas of the distinct controllers
// of pods. A controlled pod whose controller cannot be resolved is an error.
func controllersScale(ctx context.Context, pods []*corev1.Pod, find scaleFinder) (int32, []string, error) {
	scales := map[types.UID]int32{}
	seen := map[types.UID]bool{} // controller references already resolved
	var unmanaged []string
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			unmanaged = append(unmanaged, p.Name)
			continue
		}
		if seen[ref.UID] {
			continue
		}
		uid, replicas, found, err := find(ctx, ref, p.Namespace)
		if err != nil {
			return 0, nil, fmt.Errorf("controller of pod %q: %w", p.Name, err)
		}
		if !found {
			return 0, nil, fmt.Errorf("found no controllers for pod %q", p.Name)
		}
		seen[ref.UID] = true
		scales[uid] = replicas
	}
	var sum int32
	for _, n := range scales {
		sum += n
	}
	return sum, unmanaged, nil
}

// liveDisruptedPods keeps the disruptedPods entries still waiting for their
// pod's deletion: entries of pods gone, already terminating, or listed more
// than DeletionTimeout ago are dropped. recheck is when the earliest kept
// entry expires (zero if none).
func liveDisruptedPods(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, now time.Time) (kept map[string]metav1.Time, expired []string, recheck time.Time) {
	kept = map[string]metav1.Time{}
	if pdb.Status.DisruptedPods == nil {
		return kept, nil, time.Time{}
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		at, ok := pdb.Status.DisruptedPods[p.Name]
		if !ok {
			continue
		}
		deadline := at.Add(DeletionTimeout)
		if deadline.Before(now) {
			expired = append(expired, p.Name)
			continue
		}
		kept[p.Name] = at
		if recheck.IsZero() || deadline.Before(recheck) {
			recheck = deadline
		}
	}
	return kept, expired, recheck
}

// countHealthy counts the pods that are Ready, not terminating and not
// about to be deleted by an eviction.
func countHealthy(pods []*corev1.Pod, disrupted map[string]metav1.Time, now time.Time) int32 {
	var n int32
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if at, ok := disrupted[p.Name]; ok && at.Add(DeletionTimeout).After(now) {
			continue
		}
		if controllerutil.IsPodReady(p) {
			n++
		}
	}
	return n
}

// newStatus is the status the budget should have; conditions start from
// the current ones so that an unchanged condition keeps its transition time.
func newStatus(pdb *policyv1.PodDisruptionBudget, healthy, desired, expected int32, disrupted map[string]metav1.Time) policyv1.PodDisruptionBudgetStatus {
	allowed := healthy - desired
	// With no expected pods the budget allows nothing, so that pods
	// appearing before the next sync are protected.
	if expected <= 0 || allowed < 0 {
		allowed = 0
	}
	st := policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation,
		DisruptedPods:      disrupted,
		DisruptionsAllowed: allowed,
		CurrentHealthy:     healthy,
		DesiredHealthy:     desired,
		ExpectedPods:       expected,
		Conditions:         cloneConditions(pdb.Status.Conditions),
	}
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, ObservedGeneration: st.ObservedGeneration,
		Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason}
	if allowed > 0 {
		cond.Status, cond.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	apimeta.SetStatusCondition(&st.Conditions, cond)
	return st
}

// failedStatus is the fail-safe status after a sync error: no disruptions
// allowed, and a SyncFailed condition carrying the error.
func failedStatus(pdb *policyv1.PodDisruptionBudget, err error) policyv1.PodDisruptionBudgetStatus {
	st := *pdb.Status.DeepCopy()
	st.DisruptionsAllowed = 0
	if st.Conditions == nil {
		st.Conditions = []metav1.Condition{}
	}
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.SyncFailedReason, Message: err.Error(), ObservedGeneration: st.ObservedGeneration,
	})
	return st
}

func cloneConditions(in []metav1.Condition) []metav1.Condition {
	out := make([]metav1.Condition, len(in))
	copy(out, in)
	return out
}
