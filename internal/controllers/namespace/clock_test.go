package namespace

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

// The deletion conditions carry the controller's clock.
func TestDeletionConditionsStampedByClock(t *testing.T) {
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}})
	c := New(client, nil, informers.NewSharedInformerFactory(client, 0), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(c.queue.ShutDown)
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	c.Clock = clocktesting.NewFakePassiveClock(at)
	if err := c.updateConditions(context.Background(), "ns", newDeletionReport()); err != nil {
		t.Fatal(err)
	}
	ns, err := client.CoreV1().Namespaces().Get(context.Background(), "ns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Status.Conditions) == 0 {
		t.Fatal("no deletion conditions written")
	}
	for _, cond := range ns.Status.Conditions {
		if !cond.LastTransitionTime.Time.Equal(at) {
			t.Errorf("%s: lastTransitionTime %v, want %v", cond.Type, cond.LastTransitionTime, at)
		}
	}
}
