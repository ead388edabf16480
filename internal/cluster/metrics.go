package cluster

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricsGatherers is what the server's /metrics serves: the process's
// default registry and the registries of the components it runs, which are
// added as the components are built (after the handler already serves).
type metricsGatherers struct {
	mu sync.Mutex
	gs prometheus.Gatherers
}

func newMetricsGatherers(gs ...prometheus.Gatherer) *metricsGatherers {
	return &metricsGatherers{gs: gs}
}

// add makes g's metrics part of the answer from now on.
func (m *metricsGatherers) add(g prometheus.Gatherer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gs = append(m.gs, g)
}

// Gather implements prometheus.Gatherer.
func (m *metricsGatherers) Gather() ([]*dto.MetricFamily, error) {
	m.mu.Lock()
	gs := append(prometheus.Gatherers(nil), m.gs...)
	m.mu.Unlock()
	return gs.Gather()
}
