package manager

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/util/workqueue"
)

func TestWorkqueueSeriesByName(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newWorkqueueMetrics()
	reg.MustRegister(m.depth, m.unfinished, m.longest, m.adds, m.retries, m.latency, m.workDuration)
	// A queue built on the provider directly, as SetProvider would have
	// every named queue of the process built.
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "deployment", MetricsProvider: m})
	defer q.ShutDown()
	q.Add("a")
	q.Add("b")
	if got := value(t, m.depth.WithLabelValues("deployment")); got != 2 {
		t.Errorf("workqueue_depth{name=deployment} = %v, want 2", got)
	}
	item, _ := q.Get()
	q.AddRateLimited(item)
	q.Done(item)
	if got := value(t, m.adds.WithLabelValues("deployment")); got != 2 {
		t.Errorf("workqueue_adds_total = %v, want 2", got)
	}
	if got := value(t, m.retries.WithLabelValues("deployment")); got != 1 {
		t.Errorf("workqueue_retries_total = %v, want 1", got)
	}
	for _, name := range []string{"workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds",
		"workqueue_work_duration_seconds", "workqueue_retries_total", "workqueue_unfinished_work_seconds",
		"workqueue_longest_running_processor_seconds"} {
		if n := count(t, reg, name); n != 1 {
			t.Errorf("%s: %d series, want 1 labelled name=deployment", name, n)
		}
	}
}

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if c := out.GetCounter(); c != nil {
		return c.GetValue()
	}
	return out.GetGauge().GetValue()
}

// count is the number of series of family name labelled with a name.
func count(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		n := 0
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "name" && l.GetValue() == "deployment" {
					n++
				}
			}
		}
		return n
	}
	return 0
}
