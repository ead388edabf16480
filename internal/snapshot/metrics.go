package snapshot

import "github.com/prometheus/client_golang/prometheus"

// Scheduled snapshot metrics, on the default registry that `skiff
// server` serves at /metrics. They are package-level because several
// servers can share one process (tests) and a registry takes a name once.
var (
	successTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_etcd_snapshot_success_total",
		Help: "Scheduled etcd snapshots saved.",
	})
	failureTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "skiff_etcd_snapshot_failures_total",
		Help: "Scheduled etcd snapshots that failed (see the server log and the snapshot dir's status.json).",
	})
	lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "skiff_etcd_snapshot_last_success_timestamp_seconds",
		Help: "Unix time of the last scheduled etcd snapshot saved.",
	})
	lastSize = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "skiff_etcd_snapshot_last_size_bytes",
		Help: "Size of the last scheduled etcd snapshot saved.",
	})
)

func init() {
	prometheus.MustRegister(successTotal, failureTotal, lastSuccess, lastSize)
}
