package cluster

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/skiff-dev/skiff/internal/metricshttp"
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

// serveNodeMetrics serves g at http://addr/metrics, as kube-proxy serves
// its metrics (plain HTTP, on loopback by default), until stop is called.
// An address in use is logged, not fatal: a node runs without metrics.
func serveNodeMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricshttp.Handler(g))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("node metrics not served", "addr", addr, "err", err)
		}
	}()
	return func() { _ = srv.Close() }
}
