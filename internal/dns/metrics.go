package dns

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
	cache    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_dns_requests_total", Help: "DNS requests by query type and response code.",
		}, []string{"type", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "skiff_dns_request_duration_seconds", Help: "Time to answer a DNS request.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_dns_cache_total", Help: "Forwarded-answer cache lookups by result.",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.cache} {
			_ = reg.Register(c)
		}
	}
	return m
}
