package kubelet

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

type probeKind int

const (
	liveness probeKind = iota
	readiness
	startup
)

func (p probeKind) String() string { return [...]string{"Liveness", "Readiness", "Startup"}[p] }

// probeResult is what the probes of one container have concluded.
type probeResult struct {
	started     bool // startup probe passed (or none)
	ready       bool // readiness probe passed (or none, once started)
	mustRestart bool // liveness or startup probe failed its threshold
}

// probeManager runs one goroutine per probe of every running container and
// wakes the pod's worker when a result changes.
type probeManager struct {
	// Dependencies, passed in: how to run one probe, where failures are
	// reported, and whom to wake when a result changes.
	prober   func(ctx context.Context, pod *v1.Pod, c *v1.Container, id string, p *v1.Probe) error
	recorder func() record.EventRecorder // set once the kubelet runs
	wake     func(uid types.UID)
	clock    clock.Clock // times initial delays and periods
	// startedAt, when set, reads when a container started: initial delays
	// count from then, as upstream, not from its creation.
	startedAt func(ctx context.Context, id string) (time.Time, bool)

	mu      sync.Mutex
	workers map[string]map[probeKind]context.CancelFunc // by container ID
	results map[string]*probeResult
	byPod   map[types.UID]map[string]bool
	wg      sync.WaitGroup
}

func newProbeManager(prober func(ctx context.Context, pod *v1.Pod, c *v1.Container, id string, p *v1.Probe) error,
	recorder func() record.EventRecorder, wake func(uid types.UID), clk clock.Clock) *probeManager {
	return &probeManager{
		prober: prober, recorder: recorder, wake: wake, clock: clk, workers: map[string]map[probeKind]context.CancelFunc{},
		results: map[string]*probeResult{}, byPod: map[types.UID]map[string]bool{},
	}
}

// sync starts probe workers for the pod's running containers and forgets
// containers that stopped.
func (m *probeManager) sync(pod *v1.Pod, state *podRuntime) {
	running := map[string]*runtimeapi.Container{}
	for _, c := range state.containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running[c.Id] = c
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.byPod[pod.UID] {
		if running[id] == nil {
			m.forgetLocked(pod.UID, id)
		}
	}
	for id, rc := range running {
		if m.results[id] != nil {
			continue
		}
		spec := findContainer(pod, rc.Metadata.GetName())
		if spec == nil {
			continue
		}
		res := &probeResult{started: spec.StartupProbe == nil}
		res.ready = res.started && spec.ReadinessProbe == nil
		m.results[id] = res
		if m.byPod[pod.UID] == nil {
			m.byPod[pod.UID] = map[string]bool{}
		}
		m.byPod[pod.UID][id] = true
		m.workers[id] = map[probeKind]context.CancelFunc{}
		started := time.Unix(0, rc.CreatedAt)
		for kind, p := range map[probeKind]*v1.Probe{liveness: spec.LivenessProbe, readiness: spec.ReadinessProbe, startup: spec.StartupProbe} {
			if p == nil {
				continue
			}
			ctx, cancel := context.WithCancel(context.Background())
			m.workers[id][kind] = cancel
			m.wg.Add(1)
			go m.run(ctx, pod, spec, id, kind, p, started)
		}
	}
}

// result returns a copy of a container's probe results.
func (m *probeManager) result(id string) (probeResult, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.results[id]
	if !ok {
		return probeResult{}, false
	}
	return *r, true
}

func (m *probeManager) mustRestart(id string) bool {
	r, ok := m.result(id)
	return ok && r.mustRestart
}

func (m *probeManager) removeContainer(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for uid, ids := range m.byPod {
		if ids[id] {
			m.forgetLocked(uid, id)
		}
	}
}

func (m *probeManager) removePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.byPod[uid] {
		m.forgetLocked(uid, id)
	}
	delete(m.byPod, uid)
}

func (m *probeManager) forgetLocked(uid types.UID, id string) {
	for _, cancel := range m.workers[id] {
		cancel()
	}
	delete(m.workers, id)
	delete(m.results, id)
	delete(m.byPod[uid], id)
}

func (m *probeManager) stopAll() {
	m.mu.Lock()
	for uid := range m.byPod {
		for id := range m.byPod[uid] {
			m.forgetLocked(uid, id)
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// run probes one container periodically and records threshold crossings.
func (m *probeManager) run(ctx context.Context, pod *v1.Pod, c *v1.Container, id string, kind probeKind, p *v1.Probe, started time.Time) {
	defer m.wg.Done()
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	success, failure := int(max(p.SuccessThreshold, 1)), int(max(p.FailureThreshold, 1))
	if m.startedAt != nil {
		if t, ok := m.startedAt(ctx, id); ok {
			started = t
		}
	}
	if wait := started.Add(time.Duration(p.InitialDelaySeconds) * time.Second).Sub(m.clock.Now()); wait > 0 {
		if !m.sleep(ctx, wait) {
			return
		}
	}
	var okRun, failRun int
	for {
		res, alive := m.result(id)
		if !alive {
			return
		}
		if kind == startup || res.started {
			pctx, cancel := context.WithTimeout(ctx, timeout)
			err := m.prober(pctx, pod, c, id, p)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				okRun, failRun = okRun+1, 0
			} else {
				okRun, failRun = 0, failRun+1
				if failRun == 1 || failRun == failure {
					m.recorder().Eventf(pod, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %v", kind, err)
				}
			}
			m.record(pod.UID, id, kind, okRun >= success, failRun >= failure)
			if kind == startup && okRun >= success {
				return // startup probes stop once passed
			}
		}
		if !m.sleep(ctx, period) {
			return
		}
	}
}

func (m *probeManager) record(uid types.UID, id string, kind probeKind, passed, failed bool) {
	m.mu.Lock()
	r, ok := m.results[id]
	if !ok {
		m.mu.Unlock()
		return
	}
	before := *r
	switch kind {
	case readiness:
		if passed {
			r.ready = true
		} else if failed {
			r.ready = false
		}
	case liveness:
		if failed {
			r.mustRestart = true
		}
	case startup:
		if passed {
			r.started = true
		} else if failed {
			r.mustRestart = true
		}
	}
	changed := *r != before
	m.mu.Unlock()
	if changed {
		m.wake(uid)
	}
}

// sleep waits d on the manager's clock; false means ctx ended first.
func (m *probeManager) sleep(ctx context.Context, d time.Duration) bool {
	t := m.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// probe runs one check of any kind: exec, httpGet, tcpSocket or grpc.
// containerStartedAt is when the runtime started a container.
func (k *Kubelet) containerStartedAt(ctx context.Context, id string) (time.Time, bool) {
	resp, err := k.runtime.runtime.ContainerStatus(ctx, id, false)
	if err != nil || resp.GetStatus().GetStartedAt() == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, resp.GetStatus().GetStartedAt()), true
}

func (k *Kubelet) probe(ctx context.Context, pod *v1.Pod, c *v1.Container, id string, p *v1.Probe) error {
	host := k.probeHostFor(pod)
	switch {
	case p.Exec != nil:
		out, code, err := k.execSync(ctx, id, p.Exec.Command)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("command exited with %d: %s", code, out)
		}
		return nil
	case p.HTTPGet != nil:
		return httpCheck(ctx, host, c, p.HTTPGet)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		h := p.TCPSocket.Host
		if h == "" {
			h = host
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case p.GRPC != nil:
		conn, err := grpc.NewClient(net.JoinHostPort(host, strconv.Itoa(int(p.GRPC.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("service unhealthy (responded with %q)", resp.Status)
		}
		return nil
	}
	return nil
}

// probeHostFor is the pod's current IP as the kubelet last saw it.
func (k *Kubelet) probeHostFor(pod *v1.Pod) string {
	if pod.Spec.HostNetwork {
		return k.cfg.NodeIP.String()
	}
	k.workersMu.Lock()
	w := k.workers[pod.UID]
	k.workersMu.Unlock()
	if w != nil {
		if p := w.currentPod(); p != nil && p.Status.PodIP != "" {
			return p.Status.PodIP
		}
	}
	return pod.Status.PodIP
}

// wakePod asks a pod's worker to sync now.
func (k *Kubelet) wakePod(uid types.UID) {
	k.workersMu.Lock()
	w := k.workers[uid]
	k.workersMu.Unlock()
	if w != nil {
		w.notify()
	}
}
