package flowcontrol

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics under upstream's names and labels, registered once per process
// with the default registry that /metrics serves.
var (
	rejectedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_flowcontrol_rejected_requests_total",
		Help: "Number of requests rejected by API Priority and Fairness subsystem",
	}, []string{"flow_schema", "priority_level", "reason"})
	dispatchedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_flowcontrol_dispatched_requests_total",
		Help: "Number of requests executed by API Priority and Fairness subsystem",
	}, []string{"flow_schema", "priority_level"})
	inQueue = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_current_inqueue_requests",
		Help: "Number of requests currently pending in queues of the API Priority and Fairness subsystem",
	}, []string{"flow_schema", "priority_level"})
	executing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_current_executing_requests",
		Help: "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API Priority and Fairness subsystem",
	}, []string{"flow_schema", "priority_level"})
	nominalLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_nominal_limit_seats",
		Help: "Nominal number of execution seats configured for each priority level",
	}, []string{"priority_level"})
	currentLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiserver_flowcontrol_current_limit_seats",
		Help: "current derived number of execution seats available to each priority level",
	}, []string{"priority_level"})
	waitDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_flowcontrol_request_wait_duration_seconds",
		Help:    "Length of time a request spent waiting in its queue",
		Buckets: []float64{0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30},
	}, []string{"flow_schema", "priority_level", "execute"})
	watchCountSamples = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_flowcontrol_watch_count_samples",
		Help:    "count of watchers for mutating requests in API Priority and Fairness",
		Buckets: []float64{0, 1, 10, 100, 1000, 10000},
	}, []string{"priority_level", "flow_schema"})
	estimatedSeats = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apiserver_flowcontrol_work_estimated_seats",
		Help:    "Number of estimated seats (maximum of initial and final seats) associated with requests in API Priority and Fairness",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 100},
	}, []string{"priority_level", "flow_schema"})

	registerOnce sync.Once
)

func registerMetrics() {
	registerOnce.Do(func() {
		for _, c := range []prometheus.Collector{rejectedTotal, dispatchedTotal, inQueue, executing, nominalLimit, currentLimit, waitDuration, watchCountSamples, estimatedSeats} {
			if err := prometheus.Register(c); err != nil {
				// Another copy registered first (tests); ours still count.
				continue
			}
		}
	})
}

// schemaMetrics are one (schema, level) pair's series, looked up once per
// configuration so that a request touches no label maps.
type schemaMetrics struct {
	dispatched, rejectedQueueFull, rejectedLimit, rejectedTimeout, rejectedCancelled prometheus.Counter
	inQueue, executing                                                               prometheus.Gauge
	waitExecuted, waitRejected                                                       prometheus.Observer
	watchCount, seats                                                                prometheus.Observer
}

func newSchemaMetrics(schema, level string) *schemaMetrics {
	return &schemaMetrics{
		dispatched:        dispatchedTotal.WithLabelValues(schema, level),
		rejectedQueueFull: rejectedTotal.WithLabelValues(schema, level, reasonQueueFull),
		rejectedLimit:     rejectedTotal.WithLabelValues(schema, level, reasonConcurrencyLimit),
		rejectedTimeout:   rejectedTotal.WithLabelValues(schema, level, reasonTimeout),
		rejectedCancelled: rejectedTotal.WithLabelValues(schema, level, reasonCancelled),
		inQueue:           inQueue.WithLabelValues(schema, level),
		executing:         executing.WithLabelValues(schema, level),
		waitExecuted:      waitDuration.WithLabelValues(schema, level, "true"),
		waitRejected:      waitDuration.WithLabelValues(schema, level, "false"),
		watchCount:        watchCountSamples.WithLabelValues(level, schema),
		seats:             estimatedSeats.WithLabelValues(level, schema),
	}
}

func (m *schemaMetrics) rejected(reason string) prometheus.Counter {
	switch reason {
	case reasonQueueFull:
		return m.rejectedQueueFull
	case reasonConcurrencyLimit:
		return m.rejectedLimit
	case reasonTimeout:
		return m.rejectedTimeout
	}
	return m.rejectedCancelled
}
