package replicaset

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
)

// A ready pod counts as available only once minReadySeconds have passed on
// the controller's clock, and the controller's expectations time out on
// the same clock.
func TestAvailabilityAndExpectationsOnFakeClock(t *testing.T) {
	ctx := context.Background()
	set := rs("web", 1, "busybox")
	set.Namespace = "default"
	set.Spec.MinReadySeconds = 10
	client := fake.NewClientset(set)
	c := New(client, informers.NewSharedInformerFactory(client, 0), slogDiscard())
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.Clock = clk
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-a", Namespace: "default", Labels: set.Spec.Template.Labels},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{
			Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(clk.Now()),
		}}},
	}
	status := func() appsv1.ReplicaSetStatus {
		t.Helper()
		cur, err := client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.updateStatus(ctx, cur, []*corev1.Pod{pod}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := client.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
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

	// Replacing Clock after New also retimes the expectations.
	c.expectations.Expect("default/web", 1, 0)
	if c.expectations.Satisfied("default/web") {
		t.Fatal("expectations satisfied with a creation outstanding")
	}
	clk.SetTime(clk.Now().Add(5*time.Minute + time.Second))
	if !c.expectations.Satisfied("default/web") {
		t.Fatal("expectations did not expire on the controller's clock")
	}
}
