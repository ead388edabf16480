// Package promsd holds a test that runs Prometheus' own Kubernetes service
// discovery (discovery/kubernetes, what kubernetes_sd_configs uses) against
// an in-process Skiff API server. It is a module of its own so that Skiff
// never depends on Prometheus.
package promsd
