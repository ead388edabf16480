package kubelet

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/internal/kubelet/pleg"
)

// The kubelet's /metrics series carry upstream's names, labels, help texts
// (with component-base's stability prefix) and buckets, so the kubelet
// dashboards and alerts of kube-prometheus work unchanged.

// podStartBuckets are upstream's pod start buckets, in seconds.
var podStartBuckets = []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}

// Pod worker operations (upstream's SyncPodType names).
const (
	syncCreate = "create"
	syncUpdate = "update"
	syncSync   = "sync"
	syncKill   = "kill"
)

type metrics struct {
	podStart      prometheus.Histogram
	podWorker     *prometheus.HistogramVec // operation_type
	sandboxCreate *prometheus.HistogramVec // runtime_handler
	sandboxErrors *prometheus.CounterVec   // runtime_handler
	relist        prometheus.Histogram
	relistIntvl   prometheus.Histogram
	runtimeOps    *prometheus.CounterVec   // operation_type
	runtimeErrs   *prometheus.CounterVec   // operation_type
	runtimeDur    *prometheus.HistogramVec // operation_type
}

func alpha(help string) string { return "[ALPHA] " + help }

func newMetrics(reg prometheus.Registerer) *metrics {
	op := []string{"operation_type"}
	handler := []string{"runtime_handler"}
	m := &metrics{
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kubelet_pod_start_duration_seconds",
			Help:    alpha("Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run"),
			Buckets: podStartBuckets,
		}),
		podWorker: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubelet_pod_worker_duration_seconds",
			Help:    alpha("Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync"),
			Buckets: prometheus.DefBuckets,
		}, op),
		sandboxCreate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubelet_run_podsandbox_duration_seconds",
			Help:    alpha("Duration in seconds of the run_podsandbox operations. Broken down by RuntimeClass.Handler."),
			Buckets: prometheus.DefBuckets,
		}, handler),
		sandboxErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_run_podsandbox_errors_total",
			Help: alpha("Cumulative number of the run_podsandbox operation errors by RuntimeClass.Handler."),
		}, handler),
		relist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kubelet_pleg_relist_duration_seconds",
			Help:    alpha("Duration in seconds for relisting pods in PLEG."),
			Buckets: prometheus.DefBuckets,
		}),
		relistIntvl: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kubelet_pleg_relist_interval_seconds",
			Help:    alpha("Interval in seconds between relisting in PLEG."),
			Buckets: prometheus.DefBuckets,
		}),
		runtimeOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_runtime_operations_total",
			Help: alpha("Cumulative number of runtime operations by operation type."),
		}, op),
		runtimeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubelet_runtime_operations_errors_total",
			Help: alpha("Cumulative number of runtime operation errors by operation type."),
		}, op),
		runtimeDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubelet_runtime_operations_duration_seconds",
			Help:    alpha("Duration in seconds of runtime operations. Broken down by operation type."),
			Buckets: prometheus.ExponentialBuckets(.005, 2.5, 14),
		}, op),
	}
	if reg != nil {
		for _, c := range m.collectors() {
			_ = reg.Register(c)
		}
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.podStart, m.podWorker, m.sandboxCreate, m.sandboxErrors,
		m.relist, m.relistIntvl, m.runtimeOps, m.runtimeErrs, m.runtimeDur}
}

// observeRuntime counts one runtime call (instrumented.go).
func (m *metrics) observeRuntime(op string, start time.Time, err error) {
	m.runtimeOps.WithLabelValues(op).Inc()
	m.runtimeDur.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		m.runtimeErrs.WithLabelValues(op).Inc()
	}
}

// registerPLEG adds the series computed from the PLEG at scrape time:
// the kubelet's state gauges and the count of failed relists, so a
// runtime that stops answering shows on /metrics, not only in the log.
func (m *metrics) registerPLEG(reg prometheus.Registerer, node string, p *pleg.PLEG) {
	if reg == nil {
		return
	}
	_ = reg.Register(plegFailures(p))
	_ = reg.Register(newStateCollector(node, p))
}

func plegFailures(p *pleg.PLEG) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "kubelet_pleg_relist_failures_total", Help: "Runtime relists that failed.",
	}, func() float64 { return float64(p.Failures()) })
}

// stateCollector computes the kubelet's state gauges at scrape time from
// what it already holds (the PLEG's last relist), so no code path has to
// keep them up to date.
type stateCollector struct {
	node string
	pleg *pleg.PLEG

	nodeName, runningPods, runningContainers, lastSeen *prometheus.Desc
}

func newStateCollector(node string, p *pleg.PLEG) *stateCollector {
	return &stateCollector{
		node: node, pleg: p,
		nodeName: prometheus.NewDesc("kubelet_node_name",
			alpha("The node's name. The count is always 1."), []string{"node"}, nil),
		runningPods: prometheus.NewDesc("kubelet_running_pods",
			alpha("Number of pods that have a running pod sandbox"), nil, nil),
		runningContainers: prometheus.NewDesc("kubelet_running_containers",
			alpha("Number of containers currently running"), []string{"container_state"}, nil),
		lastSeen: prometheus.NewDesc("kubelet_pleg_last_seen_seconds",
			alpha("Timestamp in seconds when PLEG was last seen active."), nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.nodeName
	ch <- c.runningPods
	ch <- c.runningContainers
	ch <- c.lastSeen
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.nodeName, prometheus.GaugeValue, 1, c.node)
	counts := c.pleg.Counts()
	ch <- prometheus.MustNewConstMetric(c.runningPods, prometheus.GaugeValue, float64(counts.ReadyPods))
	// Every state is reported, zero included, as upstream does.
	for _, s := range []runtimeapi.ContainerState{runtimeapi.ContainerState_CONTAINER_CREATED,
		runtimeapi.ContainerState_CONTAINER_RUNNING, runtimeapi.ContainerState_CONTAINER_EXITED,
		runtimeapi.ContainerState_CONTAINER_UNKNOWN} {
		ch <- prometheus.MustNewConstMetric(c.runningContainers, prometheus.GaugeValue,
			float64(counts.Containers[s]), containerStateLabel(s))
	}
	ch <- prometheus.MustNewConstMetric(c.lastSeen, prometheus.GaugeValue,
		float64(c.pleg.LastActive().UnixNano())/1e9)
}

// containerStateLabel is upstream's container_state value: created,
// running, exited or unknown.
func containerStateLabel(s runtimeapi.ContainerState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CONTAINER_"))
}

// syncOperation names a pod worker's sync for kubelet_pod_worker_duration_seconds:
// the first sync creates, a terminating pod is killed, a timer resync is a
// sync and a wake-up by a change is an update.
func syncOperation(first, terminating, timer bool) string {
	switch {
	case terminating:
		return syncKill
	case first:
		return syncCreate
	case timer:
		return syncSync
	}
	return syncUpdate
}
