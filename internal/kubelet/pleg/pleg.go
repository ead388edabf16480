// Package pleg is the kubelet's pod lifecycle event generator. containerd
// 1.6 has no CRI event stream, so the runtime is relisted every period and
// each pod whose sandboxes or containers changed state is reported. The
// generator reports its own health: a relist that has not succeeded for
// longer than the threshold turns the node NotReady, as upstream's does.
package pleg

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// RelistThreshold is how long relisting may stall before the generator is
// unhealthy (upstream: 3 minutes).
const RelistThreshold = 3 * time.Minute

// podUIDLabel is the sandbox and container label naming the pod.
const podUIDLabel = "io.kubernetes.pod.uid"

// Config wires a generator.
type Config struct {
	Runtime cri.RuntimeService
	Clock   clock.WithTicker // nil: the real clock
	Period  time.Duration    // between relists (1 s)
	// Changed is called for every pod whose runtime objects changed state,
	// appeared or disappeared since the previous relist.
	Changed func(ctx context.Context, uid types.UID)
	// RelistDuration, when set, observes successful relists' durations.
	RelistDuration prometheus.Observer
	// RelistInterval, when set, observes the time from the start of the
	// last successful relist to the start of each new one.
	RelistInterval prometheus.Observer
	Logger         *slog.Logger
}

// Counts is what the last successful relist found, for the kubelet's
// running pods and containers gauges.
type Counts struct {
	ReadyPods  int // pods with at least one ready sandbox
	Containers map[runtimeapi.ContainerState]int
}

// PLEG relists the runtime and reports changes.
type PLEG struct {
	cfg      Config
	last     map[types.UID]string // fingerprints of the previous relist
	failures atomic.Uint64

	mu         sync.Mutex
	lastActive time.Time // start of the last successful relist
	relisted   bool      // lastActive is a relist's, not New's
	lastErr    error
	counts     Counts
}

// New returns a generator whose health counts from now.
func New(cfg Config) *PLEG {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Period <= 0 {
		cfg.Period = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Changed == nil {
		cfg.Changed = func(context.Context, types.UID) {}
	}
	return &PLEG{cfg: cfg, last: map[types.UID]string{}, lastActive: cfg.Clock.Now()}
}

// Run relists every period until ctx ends.
func (p *PLEG) Run(ctx context.Context) {
	t := p.cfg.Clock.NewTicker(p.cfg.Period)
	defer t.Stop()
	for {
		if err := p.Relist(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("relist runtime", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// Relist lists the runtime once and reports the pods that changed. A
// failure is counted and kept for Healthy and LastError.
func (p *PLEG) Relist(ctx context.Context) error {
	start := p.cfg.Clock.Now()
	p.mu.Lock()
	if p.relisted && p.cfg.RelistInterval != nil {
		p.cfg.RelistInterval.Observe(start.Sub(p.lastActive).Seconds())
	}
	p.mu.Unlock()
	current, counts, err := p.fingerprints(ctx)
	p.mu.Lock()
	p.lastErr = err
	if err == nil {
		p.lastActive, p.relisted, p.counts = start, true, counts
	}
	p.mu.Unlock()
	if err != nil {
		p.failures.Add(1)
		return err
	}
	if p.cfg.RelistDuration != nil {
		p.cfg.RelistDuration.Observe(p.cfg.Clock.Since(start).Seconds())
	}
	for uid, fp := range current {
		if p.last[uid] != fp {
			p.cfg.Changed(ctx, uid)
		}
	}
	for uid := range p.last {
		if _, ok := current[uid]; !ok {
			p.cfg.Changed(ctx, uid)
		}
	}
	p.last = current
	return nil
}

// fingerprints summarises each pod's sandbox and container states, and
// counts them.
func (p *PLEG) fingerprints(ctx context.Context) (map[types.UID]string, Counts, error) {
	counts := Counts{Containers: map[runtimeapi.ContainerState]int{}}
	sbs, err := p.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, counts, fmt.Errorf("list sandboxes: %w", err)
	}
	cs, err := p.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return nil, counts, fmt.Errorf("list containers: %w", err)
	}
	parts := map[types.UID][]string{}
	ready := map[types.UID]bool{}
	for _, s := range sbs {
		uid := types.UID(s.Labels[podUIDLabel])
		parts[uid] = append(parts[uid], s.Id+"="+s.State.String())
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready[uid] = true
		}
	}
	for _, c := range cs {
		uid := types.UID(c.Labels[podUIDLabel])
		parts[uid] = append(parts[uid], c.Id+"="+c.State.String())
		counts.Containers[c.State]++
	}
	counts.ReadyPods = len(ready)
	out := make(map[types.UID]string, len(parts))
	for uid, list := range parts {
		sort.Strings(list)
		out[uid] = strings.Join(list, ",")
	}
	return out, counts, nil
}

// Healthy is nil while a relist succeeded within RelistThreshold, else an
// error saying how long ago, in upstream's words.
func (p *PLEG) Healthy() error {
	p.mu.Lock()
	last := p.lastActive
	p.mu.Unlock()
	if elapsed := p.cfg.Clock.Since(last); elapsed > RelistThreshold {
		return fmt.Errorf("pleg was last seen active %v ago; threshold is %v", elapsed, RelistThreshold)
	}
	return nil
}

// LastError is the error of the latest relist, nil after a success.
func (p *PLEG) LastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// LastActive is the start of the last successful relist (or of the
// generator, before the first).
func (p *PLEG) LastActive() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastActive
}

// Counts is what the last successful relist found; zero before the first.
func (p *PLEG) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// Failures counts failed relists since the start.
func (p *PLEG) Failures() uint64 { return p.failures.Load() }
