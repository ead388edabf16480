package nodelifecycle

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// conditionTaints maps a node condition in a given status to the NoSchedule
// taint it calls for, as upstream's TaintNodesByCondition: the scheduler
// then keeps new pods off nodes that are not ready, unreachable or under
// pressure, unless they tolerate it.
var conditionTaints = map[corev1.NodeConditionType]map[corev1.ConditionStatus]string{
	corev1.NodeReady: {
		corev1.ConditionFalse:   corev1.TaintNodeNotReady,
		corev1.ConditionUnknown: corev1.TaintNodeUnreachable,
	},
	corev1.NodeMemoryPressure:     {corev1.ConditionTrue: corev1.TaintNodeMemoryPressure},
	corev1.NodeDiskPressure:       {corev1.ConditionTrue: corev1.TaintNodeDiskPressure},
	corev1.NodePIDPressure:        {corev1.ConditionTrue: corev1.TaintNodePIDPressure},
	corev1.NodeNetworkUnavailable: {corev1.ConditionTrue: corev1.TaintNodeNetworkUnavailable},
}

// managedNoSchedule reports whether this pass owns t: a NoSchedule taint
// with a condition's key, or the unschedulable one. Other taints, those of
// users and the NoExecute ones of taintAndEvict, are left alone.
func managedNoSchedule(t *corev1.Taint) bool {
	if t.Effect != corev1.TaintEffectNoSchedule {
		return false
	}
	if t.Key == corev1.TaintNodeUnschedulable {
		return true
	}
	for _, byStatus := range conditionTaints {
		for _, key := range byStatus {
			if key == t.Key {
				return true
			}
		}
	}
	return false
}

// wantedNoSchedule returns the keys of the NoSchedule taints the node's
// conditions and spec.unschedulable call for.
func wantedNoSchedule(node *corev1.Node) map[string]bool {
	want := map[string]bool{}
	for _, cond := range node.Status.Conditions {
		if key, ok := conditionTaints[cond.Type][cond.Status]; ok {
			want[key] = true
		}
	}
	if node.Spec.Unschedulable {
		want[corev1.TaintNodeUnschedulable] = true
	}
	return want
}

// noScheduleTaints returns the node's taints with the managed NoSchedule
// ones brought in line with its state: missing ones are added (stamped
// now), stale ones dropped, every other taint kept in place. changed is
// false when the node already has exactly the taints it should.
func noScheduleTaints(node *corev1.Node, now time.Time) (taints []corev1.Taint, changed bool) {
	want := wantedNoSchedule(node)
	have := map[string]bool{}
	for _, t := range node.Spec.Taints {
		if managedNoSchedule(&t) {
			if !want[t.Key] || have[t.Key] {
				changed = true // stale, or a duplicate
				continue
			}
			have[t.Key] = true
		}
		taints = append(taints, t)
	}
	added := metav1.NewTime(now)
	// Add in a fixed order, so one state always yields one taint list.
	for _, key := range []string{
		corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeMemoryPressure,
		corev1.TaintNodeDiskPressure, corev1.TaintNodePIDPressure, corev1.TaintNodeNetworkUnavailable,
		corev1.TaintNodeUnschedulable,
	} {
		if want[key] && !have[key] {
			taints = append(taints, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &added})
			changed = true
		}
	}
	return taints, changed
}

// updateNoScheduleTaints is upstream's NoSchedule tainting pass for one
// node, in a single update; node becomes the node as it now is. Unlike the
// NoExecute taints it is not rate limited: it only keeps new pods away.
func (c *Controller) updateNoScheduleTaints(ctx context.Context, node *corev1.Node, now time.Time) error {
	taints, changed := noScheduleTaints(node, now)
	if !changed {
		return nil
	}
	next := node.DeepCopy()
	next.Spec.Taints = taints
	updated, err := c.client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*node = *updated
	return nil
}
