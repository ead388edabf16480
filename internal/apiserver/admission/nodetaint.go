package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

var nodesResource = corev1.Resource("nodes")

// TaintNodesByCondition is upstream's plugin of that name: a node is
// created tainted not-ready (NoSchedule), so nothing is scheduled to it
// before the node lifecycle controller has seen it ready and removed the
// taint.
type TaintNodesByCondition struct{}

// NewTaintNodesByCondition returns the plugin.
func NewTaintNodesByCondition() *TaintNodesByCondition { return &TaintNodesByCondition{} }

// Name implements Mutator.
func (*TaintNodesByCondition) Name() string { return "TaintNodesByCondition" }

// Admit implements Mutator.
func (*TaintNodesByCondition) Admit(_ context.Context, a *Attributes) error {
	if a.Operation != Create || a.Subresource != "" || a.Resource.GroupResource() != nodesResource {
		return nil
	}
	node, ok := a.Object.(*corev1.Node)
	if !ok {
		return forbidden(a, fmt.Errorf("unexpected type %T", a.Object))
	}
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	for i := range node.Spec.Taints {
		if node.Spec.Taints[i].MatchTaint(&notReady) {
			return nil
		}
	}
	node.Spec.Taints = append(node.Spec.Taints, notReady)
	return nil
}
