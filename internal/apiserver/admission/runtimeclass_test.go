package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type rcLookup map[string]*nodev1.RuntimeClass

func (l rcLookup) GetRuntimeClass(_ context.Context, name string) (*nodev1.RuntimeClass, error) {
	if rc, ok := l[name]; ok {
		return rc, nil
	}
	return nil, apierrors.NewNotFound(nodev1.Resource("runtimeclasses"), name)
}

func TestRuntimeClassAdmit(t *testing.T) {
	classes := rcLookup{
		"plain": {ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Handler: "runc"},
		"heavy": {ObjectMeta: metav1.ObjectMeta{Name: "heavy"}, Handler: "kata",
			Overhead: &nodev1.Overhead{PodFixed: lrList("cpu", "250m", "memory", "120Mi")}},
		"pinned": {ObjectMeta: metav1.ObjectMeta{Name: "pinned"}, Handler: "gvisor",
			Scheduling: &nodev1.Scheduling{
				NodeSelector: map[string]string{"sandbox": "gvisor"},
				Tolerations: []corev1.Toleration{
					{Key: "sandbox", Operator: corev1.TolerationOpEqual, Value: "gvisor", Effect: corev1.TaintEffectNoSchedule},
					{Key: "spot", Operator: corev1.TolerationOpExists},
				},
			}},
	}
	tests := []struct {
		name          string
		class         string // "" leaves runtimeClassName unset
		op            Operation
		subresource   string
		overhead      corev1.ResourceList
		nodeSelector  map[string]string
		tolerations   []corev1.Toleration
		wantErr       string // substring of a Forbidden message
		wantOverhead  corev1.ResourceList
		wantSelector  map[string]string
		wantTolerates []corev1.Toleration
	}{{
		name: "no class: untouched",
	}, {
		name:    "unknown class is refused",
		class:   "missing",
		wantErr: `pod rejected: RuntimeClass "missing" not found`,
	}, {
		name:  "class without overhead or scheduling",
		class: "plain",
	}, {
		name:         "overhead is copied",
		class:        "heavy",
		wantOverhead: lrList("cpu", "250m", "memory", "120Mi"),
	}, {
		name:         "same overhead already set is fine",
		class:        "heavy",
		overhead:     lrList("cpu", "250m", "memory", "120Mi"),
		wantOverhead: lrList("cpu", "250m", "memory", "120Mi"),
	}, {
		name:     "different overhead is refused",
		class:    "heavy",
		overhead: lrList("cpu", "1"),
		wantErr:  "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead",
	}, {
		name:         "node selector and tolerations are merged",
		class:        "pinned",
		nodeSelector: map[string]string{"zone": "a"},
		tolerations:  []corev1.Toleration{{Key: "spot", Operator: corev1.TolerationOpEqual, Value: "yes"}},
		wantSelector: map[string]string{"zone": "a", "sandbox": "gvisor"},
		// The pod's spot=yes is covered by the class's "spot Exists" and dropped.
		wantTolerates: []corev1.Toleration{
			{Key: "sandbox", Operator: corev1.TolerationOpEqual, Value: "gvisor", Effect: corev1.TaintEffectNoSchedule},
			{Key: "spot", Operator: corev1.TolerationOpExists},
		},
	}, {
		name:         "conflicting node selector is refused",
		class:        "pinned",
		nodeSelector: map[string]string{"sandbox": "runc"},
		wantErr:      "conflict: runtimeClass.scheduling.nodeSelector[sandbox] = gvisor; pod.spec.nodeSelector[sandbox] = runc",
	}, {
		name:         "updates are ignored",
		class:        "missing",
		op:           Update,
		wantOverhead: nil,
	}, {
		name:        "subresources are ignored",
		class:       "missing",
		subresource: "status",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{
				Overhead: tc.overhead, NodeSelector: tc.nodeSelector, Tolerations: tc.tolerations,
			}}
			if tc.class != "" {
				pod.Spec.RuntimeClassName = ptr.To(tc.class)
			}
			op := tc.op
			if op == "" {
				op = Create
			}
			a := &Attributes{Operation: op, Resource: corev1.SchemeGroupVersion.WithResource("pods"),
				Subresource: tc.subresource, Namespace: "ns", Name: "p", Object: pod}
			plugin := NewRuntimeClass(classes)
			err := plugin.Admit(context.Background(), a)
			if err == nil {
				err = plugin.Validate(context.Background(), a)
			}
			if tc.wantErr != "" {
				if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want Forbidden containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !equality.Semantic.DeepEqual(pod.Spec.Overhead, tc.wantOverhead) {
				t.Errorf("overhead = %v, want %v", pod.Spec.Overhead, tc.wantOverhead)
			}
			wantSel := tc.wantSelector
			if wantSel == nil {
				wantSel = tc.nodeSelector
			}
			if !equality.Semantic.DeepEqual(pod.Spec.NodeSelector, wantSel) {
				t.Errorf("nodeSelector = %v, want %v", pod.Spec.NodeSelector, wantSel)
			}
			wantTol := tc.wantTolerates
			if wantTol == nil {
				wantTol = tc.tolerations
			}
			if !equality.Semantic.DeepEqual(pod.Spec.Tolerations, wantTol) {
				t.Errorf("tolerations = %v, want %v", pod.Spec.Tolerations, wantTol)
			}
		})
	}
}

func TestRuntimeClassValidateOverheadWithoutClass(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Overhead: lrList("cpu", "1")}}
	a := &Attributes{Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("pods"), Name: "p", Object: pod}
	err := NewRuntimeClass(rcLookup{}).Validate(context.Background(), a)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "Pod Overhead set without corresponding RuntimeClass defined Overhead") {
		t.Fatalf("err = %v, want Forbidden for overhead without a class", err)
	}
}
