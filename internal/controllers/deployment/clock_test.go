package deployment

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// A rollout that stops progressing is marked ProgressDeadlineExceeded
// once progressDeadlineSeconds pass on the controller's clock.
func TestProgressDeadlineOnFakeClock(t *testing.T) {
	ctx := context.Background()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), ProgressDeadlineSeconds: ptr.To[int32](60)},
	}
	newRS := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "d-1", Namespace: "default"},
		Status: appsv1.ReplicaSetStatus{Replicas: 1}}
	client := fake.NewClientset(d)
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	queue := controllerutil.NewQueue("deployment-test")
	t.Cleanup(queue.ShutDown)
	c := &Controller{client: client, queue: queue, log: slog.New(slog.DiscardHandler), Clock: clk}
	progressing := func() *appsv1.DeploymentCondition {
		t.Helper()
		if err := c.updateStatus(ctx, d, newRS, []*appsv1.ReplicaSet{newRS}, true); err != nil {
			t.Fatal(err)
		}
		return getCondition(&d.Status, appsv1.DeploymentProgressing)
	}

	start := clk.Now()
	if p := progressing(); p == nil || p.Reason != reasonRSUpdated || !p.LastUpdateTime.Time.Equal(start) {
		t.Fatalf("Progressing %+v, want %s at %v", p, reasonRSUpdated, start)
	}
	clk.SetTime(start.Add(60 * time.Second))
	if p := progressing(); p.Reason != reasonRSUpdated || p.Status != corev1.ConditionTrue {
		t.Fatalf("Progressing %+v at the deadline, want still %s", p, reasonRSUpdated)
	}
	clk.SetTime(start.Add(61 * time.Second))
	if p := progressing(); p.Reason != reasonDeadlineExceeded || p.Status != corev1.ConditionFalse || !p.LastUpdateTime.Time.Equal(clk.Now()) {
		t.Fatalf("Progressing %+v after the deadline, want %s at %v", p, reasonDeadlineExceeded, clk.Now())
	}
}
