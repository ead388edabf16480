package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeScheduler is a scheduler on a fake clock whose informers never
// start: tests drive its parts directly.
func fakeScheduler(t *testing.T) (*Scheduler, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Config{Client: fake.NewClientset(), Clock: clk})
	t.Cleanup(s.events.Shutdown)
	return s, clk
}

// startHousekeeping runs housekeeping until the test ends and waits for
// its ticker to be registered on the fake clock.
func startHousekeeping(t *testing.T, s *Scheduler, clk *clocktesting.FakeClock) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.housekeeping(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "housekeeping ticker", clk.HasWaiters)
}

// housekeepingStep steps the fake clock by d, which must reach the next
// tick, and waits until housekeeping has handled that tick: the pending
// gauges, set after the flush and the expiry, lose the sentinel.
func housekeepingStep(t *testing.T, s *Scheduler, clk *clocktesting.FakeClock, d time.Duration) {
	t.Helper()
	active := s.metrics.pending.WithLabelValues("active")
	active.Set(-1)
	clk.Step(d)
	waitFor(t, "housekeeping tick", func() bool { return gaugeValue(t, active) != -1 })
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// waitFor polls (in real time) for progress of another goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func podsOn(c *cache, node string) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.nodes[node].pods)
}

// An assumed pod whose binding the informer never confirms is dropped by
// housekeeping once its TTL has passed since the bind, and not before.
func TestAssumedPodExpiresAfterTTL(t *testing.T) {
	s, clk := fakeScheduler(t)
	s.cache.upsertNode(node("n1", "4", "8Gi", nil))
	p := pod("p", "1", "1Gi")
	s.cache.assume(p, "n1")
	startHousekeeping(t, s, clk)

	// While the bind is in flight the assumption never expires.
	housekeepingStep(t, s, clk, 10*s.cache.assumeTT)
	if !s.cache.isAssumed(p.UID) || podsOn(s.cache, "n1") != 1 {
		t.Fatal("assumption expired while binding")
	}

	s.cache.finishBinding(p.UID)
	housekeepingStep(t, s, clk, s.cache.assumeTT)
	if !s.cache.isAssumed(p.UID) || podsOn(s.cache, "n1") != 1 {
		t.Fatal("assumption expired at its TTL, before it was exceeded")
	}

	housekeepingStep(t, s, clk, housekeepingPeriod)
	if s.cache.isAssumed(p.UID) {
		t.Fatal("assumption still held after its TTL")
	}
	if n := podsOn(s.cache, "n1"); n != 0 {
		t.Fatalf("node still holds %d pod(s) after expiry", n)
	}
}

// A pod whose attempt failed stays in backoff until housekeeping sees the
// fake clock pass its backoff, then becomes active.
func TestBackoffEndsOnClock(t *testing.T) {
	s, clk := fakeScheduler(t)
	s.queue.add(pod("p", "", ""))
	qp, ok := s.queue.pop(t.Context())
	if !ok {
		t.Fatal("pop failed")
	}
	s.queue.requeue(qp, false) // first failure: initialBackoff
	startHousekeeping(t, s, clk)

	pending := func() (active, backoff float64) {
		return gaugeValue(t, s.metrics.pending.WithLabelValues("active")),
			gaugeValue(t, s.metrics.pending.WithLabelValues("backoff"))
	}
	housekeepingStep(t, s, clk, initialBackoff-housekeepingPeriod)
	if a, b := pending(); a != 0 || b != 1 {
		t.Fatalf("before backoff ended: active %v backoff %v, want 0 1", a, b)
	}
	housekeepingStep(t, s, clk, housekeepingPeriod)
	if a, b := pending(); a != 1 || b != 0 {
		t.Fatalf("after backoff ended: active %v backoff %v, want 1 0", a, b)
	}
}

// Backoff doubles per attempt, and pods parked as unschedulable come back
// only after unschedulableTimeout, both measured on the queue's clock.
func TestQueueTimingOnFakeClock(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	q := newQueue(clk)
	p := pod("p", "", "")
	q.add(p)
	ctx := t.Context()
	step := func(d time.Duration) { clk.SetTime(clk.Now().Add(d)) }

	for attempt, backoff := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		qp, _ := q.pop(ctx)
		q.requeue(qp, false)
		step(backoff - time.Millisecond)
		q.flush()
		if a, b, _ := q.lengths(); a != 0 || b != 1 {
			t.Fatalf("attempt %d: active %d backoff %d %v into a %v backoff", attempt+1, a, b, backoff-time.Millisecond, backoff)
		}
		step(time.Millisecond)
		q.flush()
		if a, _, _ := q.lengths(); a != 1 {
			t.Fatalf("attempt %d: not active after its %v backoff", attempt+1, backoff)
		}
	}

	qp, _ := q.pop(ctx)
	q.requeue(qp, true)
	step(unschedulableTimeout)
	q.flush()
	if _, _, u := q.lengths(); u != 1 {
		t.Fatal("unschedulable pod flushed at the timeout, before it was exceeded")
	}
	step(time.Nanosecond)
	q.flush()
	if a, _, u := q.lengths(); a != 1 || u != 0 {
		t.Fatalf("after the unschedulable timeout: active %d unschedulable %d, want 1 0", a, u)
	}
}

// Waiting for the PV controller to bind a claim gives up when the bind
// timeout passes on the clock, and not before.
func TestVolumeBindTimeoutOnClock(t *testing.T) {
	s, clk := fakeScheduler(t)
	b := s.vols
	n := node("n1", "4", "8Gi", nil)
	p := claimPod("p", "data")
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
		Name: "data", Namespace: "default", UID: "data-uid", ResourceVersion: "5",
		Annotations: map[string]string{annSelectedNode: n.Name},
	}}
	// The informers never run: seed their stores with a pod that exists and
	// a claim the provisioner never binds.
	if err := s.factory.Core().V1().Pods().Informer().GetIndexer().Add(p); err != nil {
		t.Fatal(err)
	}
	if err := s.factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(claim); err != nil {
		t.Fatal(err)
	}
	r := &volumeReservation{node: n, provision: []*corev1.PersistentVolumeClaim{claim}}

	errc := make(chan error, 1)
	go func() { errc <- b.bindVolumes(t.Context(), p, r) }()
	waitFor(t, "bind timer and recheck ticker", func() bool { return clk.Waiters() == 2 })

	clk.Step(b.bindTimeout - time.Millisecond)
	select {
	case err := <-errc:
		t.Fatalf("bindVolumes returned %v before the bind timeout", err)
	case <-time.After(100 * time.Millisecond):
	}

	clk.Step(time.Millisecond)
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("bindVolumes = %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bindVolumes did not give up at the bind timeout")
	}
}
