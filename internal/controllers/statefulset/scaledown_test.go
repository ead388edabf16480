package statefulset

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestScaleDownHaltsAtUnhealthyPod is the conformance spec "Scaling should
// happen in predictable order and halt if any stateful pod is unhealthy":
// OrderedReady removes the highest ordinal first, and not while it (or a
// pod above the lowest unhealthy one) is unhealthy; Parallel goes on.
func TestScaleDownHaltsAtUnhealthyPod(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ordered bool
		ready   []bool // of ss-0, ss-1, ss-2
		deleted []string
	}{
		{"ordered, all unhealthy: halts", true, []bool{false, false, false}, nil},
		{"ordered, all healthy: highest first", true, []bool{true, true, true}, []string{"ss-2"}},
		{"ordered, only the lowest unhealthy: highest first", true, []bool{false, true, true}, []string{"ss-2"}},
		{"ordered, the lowest unhealthy is the last left", true, []bool{false}, []string{"ss-0"}},
		{"parallel, all unhealthy: every pod", false, []bool{false, false, false}, []string{"ss-0", "ss-1", "ss-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "ss", Namespace: "default"}}
			var pods []*corev1.Pod
			var objs []runtime.Object
			for i, ready := range tc.ready {
				status := corev1.ConditionFalse
				if ready {
					status = corev1.ConditionTrue
				}
				p := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: "ss-" + strconv.Itoa(i), Namespace: "default"},
					Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
				}
				pods = append(pods, p)
				objs = append(objs, p)
			}
			client := fake.NewClientset(objs...)
			var deleted []string
			client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				deleted = append(deleted, a.(k8stesting.DeleteAction).GetName())
				return false, nil, nil
			})
			c := New(client, informers.NewSharedInformerFactory(client, 0), slog.New(slog.DiscardHandler))
			if err := c.reconcilePods(context.Background(), set, "r1", 0, map[int]*corev1.Pod{}, pods, tc.ordered); err != nil {
				t.Fatal(err)
			}
			slices.Sort(deleted)
			if !slices.Equal(deleted, tc.deleted) {
				t.Errorf("deleted %v, want %v", deleted, tc.deleted)
			}
		})
	}
}
