package daemonset

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

// A ready daemon pod counts as available only once minReadySeconds have
// passed on the controller's clock.
func TestNumberAvailableOnFakeClock(t *testing.T) {
	ctx := context.Background()
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{MinReadySeconds: 10}}
	client := fake.NewClientset(ds)
	c := New(client, informers.NewSharedInformerFactory(client, 0), slog.New(slog.DiscardHandler))
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.Clock = clk
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ds-a", Namespace: "default", Labels: map[string]string{RevisionHashLabel: "h"}},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{
			Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(clk.Now()),
		}}},
	}
	status := func() appsv1.DaemonSetStatus {
		t.Helper()
		if err := c.updateStatus(ctx, ds, "h", []*corev1.Pod{pod}, map[string]bool{"n1": true}); err != nil {
			t.Fatal(err)
		}
		got, err := client.AppsV1().DaemonSets("default").Get(ctx, "ds", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got.Status
	}

	if st := status(); st.NumberReady != 1 || st.NumberAvailable != 0 || st.NumberUnavailable != 1 {
		t.Fatalf("status %+v right after ready, want ready 1, available 0", st)
	}
	clk.SetTime(clk.Now().Add(11 * time.Second))
	if st := status(); st.NumberAvailable != 1 || st.NumberUnavailable != 0 {
		t.Fatalf("status %+v after minReadySeconds, want available 1", st)
	}
}
