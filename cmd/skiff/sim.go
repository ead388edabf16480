package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-dev/skiff/internal/sim"
)

// runSim runs simulated nodes against a server until SIGINT or SIGTERM.
func runSim(args []string) error {
	fs := flag.NewFlagSet("sim", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server (required)")
	server := fs.String("server", "", "API server address, overriding the kubeconfig's")
	nodes := fs.Int("nodes", 100, "number of simulated nodes")
	prefix := fs.String("node-prefix", "sim-", "node names are this prefix and a number; a later run with the same prefix takes the nodes over")
	cpu := fs.String("cpu", "32", "CPU capacity of each node")
	memory := fs.String("memory", "256Gi", "memory capacity of each node")
	maxPods := fs.Int("max-pods", 110, "pod capacity of each node")
	podWorkers := fs.Int("pod-workers", 8, "concurrent pod status writers")
	writers := fs.Int("heartbeat-writers", 16, "concurrent node Lease and status writers")
	qps := fs.Float64("kube-api-qps", 2000, "client-side rate limit of all the nodes' requests together (-1: none)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return errors.New("sim: --kubeconfig is required")
	}
	cpuQ, err := resource.ParseQuantity(*cpu)
	if err != nil {
		return fmt.Errorf("sim: --cpu: %w", err)
	}
	memQ, err := resource.ParseQuantity(*memory)
	if err != nil {
		return fmt.Errorf("sim: --memory: %w", err)
	}
	log := newLogger(*logLevel)
	slog.SetDefault(log)
	ctx, stop := signalContext()
	defer stop()
	return sim.Run(ctx, sim.Config{
		Kubeconfig: *kubeconfig, Server: *server, Nodes: *nodes, NamePrefix: *prefix,
		CPU: cpuQ, Memory: memQ, MaxPods: *maxPods, PodWorkers: *podWorkers, Writers: *writers, QPS: float32(*qps), Logger: log,
	})
}
