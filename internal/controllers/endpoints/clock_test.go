package endpoints

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
)

// A change to an existing Endpoints object is stamped with the time on the
// controller's clock.
func TestLastChangeTriggerOnFakeClock(t *testing.T) {
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	client := fake.NewClientset(&corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}})
	c := New(client, informers.NewSharedInformerFactory(client, 0), slog.New(slog.DiscardHandler))
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	c.Clock = clk
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-a", Namespace: "default", UID: "uid-a"},
		Status: corev1.PodStatus{PodIP: "10.0.0.1"}}
	if err := c.syncEndpoints(ctx, svc, []address{{pod: pod, ready: true}}); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Subsets) != 1 || len(got.Subsets[0].Addresses) != 1 {
		t.Fatalf("subsets %+v, want the one ready address", got.Subsets)
	}
	if ts, want := got.Annotations[lastChangeTrigger], "2026-03-04T05:06:07Z"; ts != want {
		t.Fatalf("%s = %q, want %q", lastChangeTrigger, ts, want)
	}
}
