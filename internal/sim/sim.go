// Package sim runs simulated nodes against an API server, for scale tests:
// each node registers, renews its Lease and reports status as a kubelet
// would, and the pods bound to it go through their lifecycle by status
// writes alone (no containers). Everything goes through client-go, so the
// server sees the same traffic as from real nodes.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config describes the simulated nodes. Zero fields take the defaults
// noted on them.
type Config struct {
	// RESTConfig reaches the API server; when nil, Kubeconfig is read.
	RESTConfig *rest.Config
	// Kubeconfig is the path of a kubeconfig file, used when RESTConfig is nil.
	Kubeconfig string
	// Server overrides the API server address of RESTConfig or Kubeconfig.
	Server string

	// Nodes is how many nodes to run (at least 1).
	Nodes int
	// NamePrefix names node i NamePrefix+i; default "sim-".
	NamePrefix string
	// CPU, Memory and MaxPods are each node's capacity (and allocatable);
	// defaults 32, 256Gi and 110.
	CPU     resource.Quantity
	Memory  resource.Quantity
	MaxPods int
	// PodCIDR is split into one /24 per node, for nodes that have no
	// spec.podCIDR yet; default 10.128.0.0/9 (32,768 nodes).
	PodCIDR string

	// LeaseInterval is how often each node renews its Lease; default 10 s,
	// as the kubelet.
	LeaseInterval time.Duration
	// StatusInterval is how often each node rewrites its Ready condition;
	// default 60 s, jittered by ±10%.
	StatusInterval time.Duration
	// Writers bounds the concurrent node heartbeat writes; default 16.
	Writers int
	// PodWorkers bounds the concurrent pod status writes; default 8.
	PodWorkers int
	// QPS limits all requests client-side; default 2000, negative: none.
	QPS float32

	Logger *slog.Logger
}

const leaseNamespace = "kube-node-lease"

func (c *Config) defaults() error {
	if c.Nodes < 1 {
		return fmt.Errorf("sim: Nodes must be at least 1, got %d", c.Nodes)
	}
	if c.NamePrefix == "" {
		c.NamePrefix = "sim-"
	}
	if c.CPU.IsZero() {
		c.CPU = resource.MustParse("32")
	}
	if c.Memory.IsZero() {
		c.Memory = resource.MustParse("256Gi")
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.PodCIDR == "" {
		c.PodCIDR = "10.128.0.0/9"
	}
	if c.LeaseInterval == 0 {
		c.LeaseInterval = 10 * time.Second
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 60 * time.Second
	}
	if c.Writers == 0 {
		c.Writers = 16
	}
	if c.PodWorkers == 0 {
		c.PodWorkers = 8
	}
	if c.QPS == 0 {
		c.QPS = 2000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

func (c *Config) restConfig() (*rest.Config, error) {
	var cfg *rest.Config
	if c.RESTConfig != nil {
		cfg = rest.CopyConfig(c.RESTConfig)
		if c.Server != "" {
			cfg.Host = c.Server
		}
	} else {
		if c.Kubeconfig == "" {
			return nil, errors.New("sim: neither RESTConfig nor Kubeconfig given")
		}
		var err error
		if cfg, err = clientcmd.BuildConfigFromFlags(c.Server, c.Kubeconfig); err != nil {
			return nil, fmt.Errorf("sim: kubeconfig %s: %w", c.Kubeconfig, err)
		}
	}
	cfg.QPS, cfg.Burst = c.QPS, int(c.QPS)
	if c.QPS < 0 {
		cfg.QPS, cfg.Burst = -1, 0
	}
	cfg.UserAgent = "skiff-sim"
	return cfg, nil
}

// sim is one run: its nodes, the pod IPs it handed out and its client.
type sim struct {
	cfg    Config
	log    *slog.Logger
	client kubernetes.Interface
	nodes  map[string]*simNode // fixed after start: read without locking
	order  []*simNode
	ipam   *ipam
}

// Run registers the nodes and runs them and their pods until ctx is
// cancelled. The nodes stay registered afterwards, so that a later run with
// the same prefix takes them over. It returns nil once everything it
// started has stopped.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	podCIDR, err := netip.ParsePrefix(cfg.PodCIDR)
	if err != nil || !podCIDR.Addr().Is4() || podCIDR.Bits() > 24 {
		return fmt.Errorf("sim: pod CIDR %q: want an IPv4 prefix of /24 or larger", cfg.PodCIDR)
	}
	if cfg.Nodes > 1<<(24-podCIDR.Bits()) {
		return fmt.Errorf("sim: pod CIDR %s has room for %d nodes, not %d", podCIDR, 1<<(24-podCIDR.Bits()), cfg.Nodes)
	}
	rc, err := cfg.restConfig()
	if err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return fmt.Errorf("sim: http client: %w", err)
	}
	// Idle keep-alive connections hold goroutines; drop them when done.
	defer hc.CloseIdleConnections()
	client, err := kubernetes.NewForConfigAndClient(rc, hc)
	if err != nil {
		return fmt.Errorf("sim: client: %w", err)
	}
	return run(ctx, cfg, client, podCIDR)
}

func run(ctx context.Context, cfg Config, client kubernetes.Interface, podCIDR netip.Prefix) error {
	s := &sim{cfg: cfg, log: cfg.Logger.With("component", "sim"), client: client, nodes: map[string]*simNode{}, ipam: newIPAM()}
	for i := range cfg.Nodes {
		n := newSimNode(cfg.NamePrefix, i, podCIDR)
		s.nodes[n.name] = n
		s.order = append(s.order, n)
	}
	s.log.Info("starting simulated nodes", "nodes", cfg.Nodes, "prefix", cfg.NamePrefix)
	var wg sync.WaitGroup
	hb := s.startHeartbeats(ctx, &wg)
	pods := s.startPods(ctx, &wg)
	<-ctx.Done()
	hb.ShutDown()
	pods.stop()
	wg.Wait()
	s.log.Info("simulated nodes stopped", "nodes", cfg.Nodes)
	return nil
}
