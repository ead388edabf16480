package cluster

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsGatherersIncludeComponentsAddedLater(t *testing.T) {
	base := prometheus.NewRegistry()
	base.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "process_thing_total", Help: "x"}))
	m := newMetricsGatherers(base)

	names := func() map[string]bool {
		fams, err := m.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, f := range fams {
			out[f.GetName()] = true
		}
		return out
	}
	if got := names(); !got["process_thing_total"] || got["scheduler_pending_pods"] {
		t.Fatalf("before the scheduler starts: %v", got)
	}
	sched := prometheus.NewRegistry()
	sched.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "scheduler_pending_pods", Help: "x"}))
	m.add(sched)
	if got := names(); !got["process_thing_total"] || !got["scheduler_pending_pods"] {
		t.Errorf("after the scheduler starts: %v, want both registries", got)
	}
}
