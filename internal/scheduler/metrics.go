package scheduler

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	registry    *prometheus.Registry
	attempts    *prometheus.CounterVec
	e2e         prometheus.Histogram
	algorithm   prometheus.Histogram
	pending     *prometheus.GaugeVec
	preemptions prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scheduler_schedule_attempts_total",
			Help: "Number of attempts to schedule pods, by result (scheduled, unschedulable, error).",
		}, []string{"result"}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_pod_scheduling_duration_seconds",
			Help:    "Time from a pod entering the queue to its binding, across attempts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		algorithm: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_algorithm_duration_seconds",
			Help:    "Time spent filtering and scoring nodes for one attempt.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scheduler_pending_pods",
			Help: "Pods waiting to be scheduled, by queue (active, backoff, unschedulable).",
		}, []string{"queue"}),
		preemptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scheduler_preemption_victims_total",
			Help: "Pods evicted to make room for higher-priority pods.",
		}),
	}
	m.registry.MustRegister(m.attempts, m.e2e, m.algorithm, m.pending, m.preemptions)
	return m
}
