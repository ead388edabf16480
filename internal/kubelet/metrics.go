package kubelet

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-dev/skiff/internal/kubelet/pleg"
)

type metrics struct {
	podStart      prometheus.Histogram
	sandboxCreate prometheus.Histogram
	relist        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubelet_pod_start_duration_seconds", Help: "Duration from pod creation to Running, as seen by the kubelet.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
		sandboxCreate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubelet_run_podsandbox_duration_seconds", Help: "Duration of RunPodSandbox calls.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		relist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubelet_pleg_relist_duration_seconds", Help: "Duration of a runtime relist.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.podStart, m.sandboxCreate, m.relist} {
			_ = reg.Register(c)
		}
	}
	return m
}

// registerPLEG exposes the count of failed relists, so a runtime that
// stops answering shows on /metrics, not only in the log.
func (m *metrics) registerPLEG(reg prometheus.Registerer, p *pleg.PLEG) {
	if reg == nil {
		return
	}
	_ = reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kubelet_pleg_relist_failures_total", Help: "Runtime relists that failed.",
	}, func() float64 { return float64(p.Failures()) }))
}
