package resourcequota

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

// Creates are left to admission, so only the periodic resync, ticked by
// the controller's clock, recounts them.
func TestResyncTicksOnClock(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.Clock = clk
	controllertest.Run(t, ctx, factory, c.Run)

	hard := rl("configmaps", "5")
	if _, err := client.CoreV1().ResourceQuotas("ns").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "initial status", statusIs(t, client, "ns", "q", hard, rl("configmaps", "0")))
	controllertest.WaitFor(t, "resync ticker", clk.HasWaiters)

	if _, err := client.CoreV1().ConfigMaps("ns").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "configmap in cache", func() bool {
		objs, _, err := c.list(schema.GroupResource{Resource: "configmaps"}, "ns")
		return err == nil && len(objs) == 1
	})

	clk.Step(ResyncPeriod - time.Second)
	time.Sleep(200 * time.Millisecond) // room for a wrongly early resync
	if !statusIs(t, client, "ns", "q", hard, rl("configmaps", "0"))() {
		t.Fatal("recounted before the resync period passed")
	}
	clk.Step(time.Second)
	controllertest.WaitFor(t, "usage after resync", statusIs(t, client, "ns", "q", hard, rl("configmaps", "1")))
}
