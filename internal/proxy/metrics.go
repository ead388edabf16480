package proxy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	syncDuration prometheus.Histogram
	lastSync     prometheus.Gauge
	rules        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubeproxy_sync_proxy_rules_duration_seconds", Help: "Duration of one full sync of the service rules.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_last_timestamp_seconds", Help: "When the rules were last synced.",
		}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_iptables_total", Help: "Rules written by the last sync.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.syncDuration, m.lastSync, m.rules} {
			_ = reg.Register(c)
		}
	}
	return m
}
