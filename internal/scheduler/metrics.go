package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
)

// profile is the profile label of the attempt series: Skiff runs upstream's
// default profile only.
const profile = SchedulerName

// metrics are the scheduler's series, with upstream's names, labels and
// buckets.
type metrics struct {
	clock       clock.PassiveClock // for attempt durations
	registry    *prometheus.Registry
	attempts    *prometheus.CounterVec
	attemptTime *prometheus.HistogramVec
	e2e         prometheus.Histogram
	algorithm   prometheus.Histogram
	pending     *prometheus.GaugeVec
	preemptions prometheus.Counter
}

func newMetrics(clk clock.PassiveClock) *metrics {
	m := &metrics{
		clock:    clk,
		registry: prometheus.NewRegistry(),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scheduler_schedule_attempts_total",
			Help: "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
		}, []string{"result", "profile"}),
		attemptTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_attempt_duration_seconds",
			Help:    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"result", "profile"}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_pod_scheduling_duration_seconds",
			Help:    "Time from a pod entering the queue to its binding, across attempts.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 20),
		}),
		algorithm: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_algorithm_duration_seconds",
			Help:    "Scheduling algorithm latency in seconds",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scheduler_pending_pods",
			Help: "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods.",
		}, []string{"queue"}),
		preemptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scheduler_preemption_victims_total",
			Help: "Pods evicted to make room for higher-priority pods.",
		}),
	}
	m.registry.MustRegister(m.attempts, m.attemptTime, m.e2e, m.algorithm, m.pending, m.preemptions)
	return m
}

// attempt records the end of a scheduling attempt that began at start.
func (m *metrics) attempt(result string, start time.Time) {
	m.attempts.WithLabelValues(result, profile).Inc()
	if !start.IsZero() {
		m.attemptTime.WithLabelValues(result, profile).Observe(m.clock.Since(start).Seconds())
	}
}
