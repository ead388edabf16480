package statefulset

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
)

// A ready stateful pod counts as available only once minReadySeconds have
// passed on the controller's clock.
func TestAvailableReplicasOnFakeClock(t *testing.T) {
	ctx := context.Background()
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{MinReadySeconds: 10}}
	client := fake.NewClientset(set)
	c := New(client, informers.NewSharedInformerFactory(client, 0), slog.New(slog.DiscardHandler))
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.Clock = clk
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "default", Labels: map[string]string{RevisionLabel: "r1"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{
			Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(clk.Now()),
		}}},
	}
	status := func() appsv1.StatefulSetStatus {
		t.Helper()
		if err := c.updateStatus(ctx, set, "r1", []*corev1.Pod{pod}, 1); err != nil {
			t.Fatal(err)
		}
		got, err := client.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got.Status
	}

	if st := status(); st.ReadyReplicas != 1 || st.AvailableReplicas != 0 {
		t.Fatalf("status %+v right after ready, want ready 1, available 0", st)
	}
	clk.SetTime(clk.Now().Add(11 * time.Second))
	if st := status(); st.AvailableReplicas != 1 {
		t.Fatalf("status %+v after minReadySeconds, want available 1", st)
	}
}
