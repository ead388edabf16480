package scheduler

import (
	"context"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func TestAttemptMetricsCarryResultAndProfile(t *testing.T) {
	ts := testserver.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := New(Config{Client: ts.Client})
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &env{t: t, client: ts.Client, ctx: ctx}
	e.node("n1", "1", nil)
	e.pod(pod("fits", "500m", ""))
	e.placement("fits")
	e.pod(pod("too-big", "2", ""))
	e.unschedulable("too-big")

	find := func(name string, labels map[string]string) *dto.Metric {
		fams, err := s.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
		next:
			for _, m := range f.GetMetric() {
				have := map[string]string{}
				for _, l := range m.GetLabel() {
					have[l.GetName()] = l.GetValue()
				}
				for k, v := range labels {
					if have[k] != v {
						continue next
					}
				}
				return m
			}
		}
		return nil
	}
	for _, result := range []string{"scheduled", "unschedulable"} {
		l := map[string]string{"result": result, "profile": "default-scheduler"}
		if m := find("scheduler_schedule_attempts_total", l); m == nil || m.GetCounter().GetValue() < 1 {
			t.Errorf("scheduler_schedule_attempts_total%v = %v, want >= 1", l, m)
		}
		m := find("scheduler_scheduling_attempt_duration_seconds", l)
		if m == nil || m.GetHistogram().GetSampleCount() < 1 {
			t.Fatalf("scheduler_scheduling_attempt_duration_seconds%v = %v, want samples", l, m)
		}
		if b := m.GetHistogram().GetBucket(); len(b) != 15 || b[0].GetUpperBound() != 0.001 {
			t.Errorf("attempt duration buckets = %v, want 15 from 1 ms", b)
		}
	}
	// The pending gauge follows the queue: the pod that fits nowhere waits
	// as unschedulable.
	testserver.Eventually(t, "scheduler_pending_pods{queue=unschedulable} to be 1", func() bool {
		m := find("scheduler_pending_pods", map[string]string{"queue": "unschedulable"})
		return m != nil && m.GetGauge().GetValue() == 1
	})
}
