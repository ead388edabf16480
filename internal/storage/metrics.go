package storage

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// etcdMetrics times the Store's etcd requests as upstream's
// etcd_request_duration_seconds{operation,type}, where type is the
// resource of the key ("pods", "deployments.apps").
type etcdMetrics struct {
	durations *prometheus.HistogramVec

	// Children by label values, so a request costs one map lookup.
	mu  sync.RWMutex
	obs map[etcdLabels]prometheus.Observer
}

type etcdLabels struct{ operation, typ string }

func newEtcdMetrics() *etcdMetrics {
	return &etcdMetrics{
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "etcd_request_duration_seconds",
			Help: "Etcd request latency in seconds for each operation and object type.",
			// Upstream's buckets, the same as its request latencies'.
			Buckets: []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3,
				4, 5, 6, 8, 10, 15, 20, 30, 45, 60},
		}, []string{"operation", "type"}),
		obs: map[etcdLabels]prometheus.Observer{},
	}
}

// Collectors are the Store's metrics, for the API server's registry.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.durations}
}

// observe records one etcd request on key (or prefix) that began at start.
func (m *etcdMetrics) observe(operation, key string, start time.Time) {
	l := etcdLabels{operation, keyType(key)}
	m.mu.RLock()
	o, ok := m.obs[l]
	m.mu.RUnlock()
	if !ok {
		l.typ = strings.Clone(l.typ) // a slice of the key otherwise
		m.mu.Lock()
		if o, ok = m.obs[l]; !ok {
			o = m.durations.WithLabelValues(l.operation, l.typ)
			m.obs[l] = o
		}
		m.mu.Unlock()
	}
	o.Observe(time.Since(start).Seconds())
}

// keyType is the first segment after /registry/: the resource of a
// built-in key (/registry/<resource>[.<group>]/...), the group of a custom
// resource's (/registry/<group>/<plural>/...).
func keyType(key string) string {
	rest, ok := strings.CutPrefix(key, "/registry/")
	if !ok {
		return ""
	}
	first, _, _ := strings.Cut(rest, "/")
	return first
}
