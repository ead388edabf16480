// Package proxy is Skiff's service proxy (kube-proxy's iptables mode): it
// watches Services and EndpointSlices and programs the node so that
// ClusterIPs, NodePorts, external and load-balancer IPs reach the
// endpoints. Every sync writes all of Skiff's chains in one
// iptables-restore batch.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// Config configures a Proxier.
type Config struct {
	Client   kubernetes.Interface
	NodeName string
	// ClusterCIDR is the pod network: traffic from outside it to a service
	// is masqueraded so replies come back through this node.
	ClusterCIDR string
	// MinSyncPeriod bounds how often rules are rewritten (default 1 s);
	// SyncPeriod forces a full resync (default 30 s).
	MinSyncPeriod time.Duration
	SyncPeriod    time.Duration
	// Runner applies rules; nil uses the iptables binaries.
	Runner     Runner
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Proxier keeps the node's Skiff chains in sync with the cluster.
type Proxier struct {
	cfg      Config
	log      *slog.Logger
	runner   Runner
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	factory  informers.SharedInformerFactory
	trigger  chan struct{}
	metrics  *metrics

	mu        sync.Mutex
	lastUDP   map[string]map[string]bool // UDP service IP → endpoint IPs, for conntrack cleanup
	lastRules int
}

// New prepares a proxier; Run starts it.
func New(cfg Config) (*Proxier, error) {
	if cfg.Client == nil || cfg.NodeName == "" {
		return nil, errors.New("proxy: Client and NodeName are required")
	}
	if cfg.MinSyncPeriod == 0 {
		cfg.MinSyncPeriod = time.Second
	}
	if cfg.SyncPeriod == 0 {
		cfg.SyncPeriod = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Runner == nil {
		cfg.Runner = ExecRunner{}
	}
	if cfg.ClusterCIDR != "" {
		if _, _, err := net.ParseCIDR(cfg.ClusterCIDR); err != nil {
			return nil, fmt.Errorf("proxy: cluster CIDR: %w", err)
		}
	}
	p := &Proxier{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "proxy"),
		runner:  cfg.Runner,
		factory: informers.NewSharedInformerFactory(cfg.Client, 0),
		trigger: make(chan struct{}, 1),
		metrics: newMetrics(cfg.Registerer),
		lastUDP: map[string]map[string]bool{},
	}
	p.services = p.factory.Core().V1().Services().Lister()
	p.slices = p.factory.Discovery().V1().EndpointSlices().Lister()
	return p, nil
}

// Run syncs until ctx ends. Rules stay in place after it returns (traffic
// keeps flowing while the agent restarts); Cleanup removes them.
func (p *Proxier) Run(ctx context.Context) error {
	if err := p.StartInformers(ctx); err != nil {
		return err
	}
	defer p.factory.Shutdown()

	resync := time.NewTicker(p.cfg.SyncPeriod)
	defer resync.Stop()
	var last time.Time
	for {
		// Rate limit: at most one sync per MinSyncPeriod; events that
		// arrive meanwhile coalesce into the next one.
		if wait := p.cfg.MinSyncPeriod - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		last = time.Now()
		if err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("sync service rules", "err", err)
			p.requestSync()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
		case <-resync.C:
		}
	}
}

// StartInformers starts watching Services and EndpointSlices and waits for
// the caches; Run calls it, benchmarks call it before Sync.
func (p *Proxier) StartInformers(ctx context.Context) error {
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.requestSync() },
		UpdateFunc: func(any, any) { p.requestSync() },
		DeleteFunc: func(any) { p.requestSync() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		p.factory.Core().V1().Services().Informer(),
		p.factory.Discovery().V1().EndpointSlices().Informer(),
	} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	p.factory.Start(ctx.Done())
	p.factory.WaitForCacheSync(ctx.Done())
	return nil
}

// StopInformers stops the watches of StartInformers (after ctx ended).
func (p *Proxier) StopInformers() { p.factory.Shutdown() }

func (p *Proxier) requestSync() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Sync writes the full rule set once.
func (p *Proxier) Sync(ctx context.Context) error {
	start := time.Now()
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return err
	}
	all, err := p.slices.List(labels.Everything())
	if err != nil {
		return err
	}
	slices := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range all {
		if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
			slices[sl.Namespace+"/"+name] = append(slices[sl.Namespace+"/"+name], sl)
		}
	}
	ports := servicePorts(svcs, slices, p.cfg.NodeName)
	rs := buildRules(ports, p.cfg.ClusterCIDR)
	if err := p.apply(ctx, rs); err != nil {
		return err
	}
	p.flushStaleUDP(ctx, ports)
	p.metrics.syncDuration.Observe(time.Since(start).Seconds())
	p.metrics.lastSync.SetToCurrentTime()
	p.metrics.rules.Set(float64(rs.rules))
	p.mu.Lock()
	p.lastRules = rs.rules
	p.mu.Unlock()
	return nil
}

// apply makes sure the jumps from the built-in chains exist, then restores
// Skiff's chains in one batch, deleting the ones no longer wanted.
func (p *Proxier) apply(ctx context.Context, rs *ruleset) error {
	existing := map[string]map[string]bool{}
	for _, table := range []string{"filter", "nat"} {
		out, err := p.runner.Save(ctx, table)
		if err != nil {
			return err
		}
		existing[table] = skiffChains(out)
		if err := p.ensureJumps(ctx, table, out); err != nil {
			return err
		}
	}
	stale := func(table string, want []string) []string {
		keep := map[string]bool{}
		for _, c := range want {
			keep[c] = true
		}
		var out []string
		for c := range existing[table] {
			if !keep[c] {
				out = append(out, c)
			}
		}
		return out
	}
	data := rs.render(stale("nat", rs.natChains), stale("filter", rs.filterChains))
	return p.runner.Restore(ctx, data)
}

// ensureJumps adds each missing jump from a built-in chain, at the top.
func (p *Proxier) ensureJumps(ctx context.Context, table string, saved []byte) error {
	for _, j := range jumps {
		if j.table != table {
			continue
		}
		if bytes.Contains(saved, []byte("-A "+j.chain+" "+j.rule)) {
			continue
		}
		// The target chain must exist before a rule can jump to it.
		if err := p.runner.Restore(ctx, []byte(fmt.Sprintf("*%s\n:%s - [0:0]\nCOMMIT\n", table, lastField(j.rule)))); err != nil {
			return err
		}
		if err := p.runner.Insert(ctx, table, j.chain, j.rule); err != nil {
			return err
		}
	}
	return nil
}

func lastField(s string) string {
	f := strings.Fields(s)
	return f[len(f)-1]
}

// skiffChains lists the Skiff chains in iptables-save output.
func skiffChains(saved []byte) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(string(saved), "\n") {
		if strings.HasPrefix(line, ":"+chainPrefix) {
			out[strings.Fields(line[1:])[0]] = true
		}
	}
	return out
}

// flushStaleUDP deletes conntrack entries of UDP services whose endpoints
// went away: without it, clients keep talking to the old endpoint.
func (p *Proxier) flushStaleUDP(ctx context.Context, ports []*servicePort) {
	now := map[string]map[string]bool{}
	for _, sp := range ports {
		if proto(sp.port.Protocol) != "udp" {
			continue
		}
		for _, ip := range clusterIPsOf(sp.svc) {
			if now[ip] == nil {
				now[ip] = map[string]bool{}
			}
			for _, ep := range sp.endpoints {
				now[ip][ep.ip] = true
			}
		}
	}
	p.mu.Lock()
	prev := p.lastUDP
	p.lastUDP = now
	p.mu.Unlock()
	for ip, eps := range prev {
		for ep := range eps {
			if now[ip][ep] {
				continue
			}
			if err := p.runner.DeleteConntrack(ctx, ip, ep); err != nil {
				p.log.Debug("flush conntrack", "service", ip, "endpoint", ep, "err", err)
			}
		}
	}
}

// Cleanup removes every Skiff chain and the jumps into them.
func Cleanup(ctx context.Context, runner Runner) error {
	if runner == nil {
		runner = ExecRunner{}
	}
	for _, table := range []string{"nat", "filter"} {
		saved, err := runner.Save(ctx, table)
		if err != nil {
			return err
		}
		for _, j := range jumps {
			if j.table == table && bytes.Contains(saved, []byte("-A "+j.chain+" "+j.rule)) {
				if err := runner.Delete(ctx, table, j.chain, j.rule); err != nil {
					return err
				}
			}
		}
		chains := skiffChains(saved)
		if len(chains) == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "*%s\n", table)
		for c := range chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for c := range chains {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
		if err := runner.Restore(ctx, []byte(b.String())); err != nil {
			return err
		}
	}
	return nil
}
