package admission

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTaintNodesByCondition(t *testing.T) {
	nodesGVR := corev1.SchemeGroupVersion.WithResource("nodes")
	notReady := corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}
	gpu := corev1.Taint{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name   string
		op     Operation
		sub    string
		taints []corev1.Taint
		want   []corev1.Taint
	}{
		{name: "create adds the taint", op: Create, want: []corev1.Taint{notReady}},
		{name: "after the node's own taints", op: Create, taints: []corev1.Taint{gpu}, want: []corev1.Taint{gpu, notReady}},
		{name: "not twice (value ignored, as MatchTaint)", op: Create,
			taints: []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Value: "x", Effect: corev1.TaintEffectNoSchedule}},
			want:   []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Value: "x", Effect: corev1.TaintEffectNoSchedule}}},
		{name: "a NoExecute not-ready taint is another taint", op: Create,
			taints: []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoExecute}},
			want:   []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoExecute}, notReady}},
		{name: "updates are left alone", op: Update},
		{name: "status is left alone", op: Create, sub: "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Taints: tt.taints}}
			a := &Attributes{Operation: tt.op, Resource: nodesGVR, Subresource: tt.sub, Name: "n1", Object: node}
			if err := NewTaintNodesByCondition().Admit(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(node.Spec.Taints, tt.want) {
				t.Fatalf("taints %+v, want %+v", node.Spec.Taints, tt.want)
			}
		})
	}
}
