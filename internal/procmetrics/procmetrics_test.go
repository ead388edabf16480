package procmetrics

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

func gather(t testing.TB, c prometheus.Collector) map[string]float64 {
	t.Helper()
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(c)
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out[mf.GetName()] = m.GetCounter().GetValue()
		default:
			out[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// The series and their values match client_golang's process collector,
// which this one replaces on Skiff's endpoints.
func TestMatchesTheStockProcessCollector(t *testing.T) {
	stock := gather(t, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ours := gather(t, New())
	for name, want := range stock {
		got, ok := ours[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		tolerance := 0.0
		switch name {
		case "process_cpu_seconds_total", "process_open_fds":
			tolerance = 2 // time passes and files open between the two reads
		case "process_virtual_memory_bytes", "process_resident_memory_bytes":
			tolerance = want * 0.2
		case "process_network_receive_bytes_total", "process_network_transmit_bytes_total":
			tolerance = math.Max(want*0.01, 1<<20)
		case "process_start_time_seconds":
			tolerance = 0.02
		}
		if math.Abs(got-want) > tolerance {
			t.Errorf("%s = %v, stock collector %v", name, got, want)
		}
	}
	if len(ours) != len(stock) {
		t.Errorf("%d series, stock collector %d: %v vs %v", len(ours), len(stock), ours, stock)
	}
}

func BenchmarkCollect(b *testing.B) {
	for _, bc := range []struct {
		name string
		c    prometheus.Collector
	}{{"skiff", New()}, {"stock", collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}} {
		b.Run(bc.name, func(b *testing.B) {
			r := prometheus.NewRegistry()
			r.MustRegister(bc.c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestReplaceDefault(t *testing.T) {
	ReplaceDefault()
	before := collections.Load()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if collections.Load() == before {
		t.Fatal("the default registry did not run this collector")
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() == "process_cpu_seconds_total" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("process_cpu_seconds_total appears %d times in the default registry", n)
	}
}
