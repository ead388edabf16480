// Package scheduler assigns pending pods to nodes: a queue of pods, a cache
// of nodes with the pods placed on them, filter plugins that rule nodes
// out, score plugins that rank the rest, and an asynchronous binder that
// writes the choice through the pods/binding subresource.
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/informerutil"
	"github.com/skiff-dev/skiff/internal/nodeaffinity"
)

// SchedulerName is the name pods ask for by default.
const SchedulerName = corev1.DefaultSchedulerName

// Config configures a Scheduler.
type Config struct {
	Client kubernetes.Interface
	Logger *slog.Logger
	// Local, when the scheduler runs in the API server's process, serves
	// its pod and node informers from the server's cache (informerutil).
	Local informerutil.Local
	// BindWorkers bounds concurrent binding calls (default 32).
	BindWorkers int
	// Clock is where the scheduler and its parts read time (default
	// clock.RealClock{}); tests pass a fake to step backoffs and expiries.
	Clock clock.WithTicker
}

// Scheduler places pods on nodes.
type Scheduler struct {
	client  kubernetes.Interface
	local   informerutil.Local
	log     *slog.Logger
	clock   clock.WithTicker
	cache   *cache
	queue   *queue
	filters []filterPlugin
	// volumeFilters are filters plus the volume plugins, in upstream's
	// order, for pods that have a volumeState.
	volumeFilters []filterPlugin
	vols          *volumeBinder
	scores        []scorePlugin
	metrics       *metrics

	factory   informers.SharedInformerFactory
	podLister listerscorev1.PodLister
	recorder  record.EventRecorder
	events    record.EventBroadcaster
	eventsMu  sync.Mutex // Close may run beside a Run that replaces events

	bindSem      chan struct{}
	ran          bool // Run was called before: the next needs a reset
	nextStart    int  // round-robin start of the node scan
	spreadCounts spreadCounts
	binds        sync.WaitGroup
}

// New builds a scheduler; Run starts it.
func New(cfg Config) *Scheduler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BindWorkers <= 0 {
		cfg.BindWorkers = 32
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	s := &Scheduler{
		client: cfg.Client,
		local:  cfg.Local,
		log:    cfg.Logger,
		clock:  cfg.Clock,
		filters: []filterPlugin{
			nodeUnschedulable{}, nodeName{}, taintToleration{}, nodeAffinity{}, nodePorts{}, resourcesFit{},
			podTopologySpread{}, interPodAffinity{},
		},
		scores: []scorePlugin{
			taintToleration{}, nodeAffinity{}, podTopologySpread{}, interPodAffinity{},
			leastAllocated{}, balancedAllocation{}, imageLocality{},
		},
		metrics: newMetrics(cfg.Clock),
		bindSem: make(chan struct{}, cfg.BindWorkers),
	}
	s.reset()
	return s
}

// reset builds what one run of the scheduler uses: informers, cache, queue
// and event broadcaster, none of which can start again once stopped. Run
// calls it when the scheduler runs again (it lost its leader lease and won
// it back), where upstream's scheduler would restart its process.
func (s *Scheduler) reset() {
	s.cache = newCache(s.clock)
	s.queue = newQueue(s.clock)
	s.spreadCounts = spreadCounts{} // keyed by the old cache's node generations
	s.nextStart = 0
	s.factory = informerutil.NewFactory(s.client, 0, s.local)
	s.podLister = s.factory.Core().V1().Pods().Lister()
	s.vols = newVolumeBinder(s.client, s.log, s.clock, s.factory, s.podLister, s.onStorageChange)
	s.volumeFilters = []filterPlugin{
		nodeUnschedulable{}, nodeName{}, taintToleration{}, nodeAffinity{}, nodePorts{}, resourcesFit{},
		volumeRestrictions{}, nodeVolumeLimits{s.vols}, volumeBinding{s.vols}, volumeZone{},
		podTopologySpread{}, interPodAffinity{},
	}
	s.eventsMu.Lock()
	s.events = record.NewBroadcaster()
	s.eventsMu.Unlock()
	s.recorder = s.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: SchedulerName})
	s.registerHandlers()
}

// Close releases what New started, its event broadcaster, for a scheduler
// that may never run (one waiting for its leader lease when the process
// stops). Run releases it too; Close after Run is harmless.
func (s *Scheduler) Close() {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	s.events.Shutdown()
}

// Registry exposes the scheduler's Prometheus metrics.
func (s *Scheduler) Registry() *prometheus.Registry { return s.metrics.registry }

func (s *Scheduler) registerHandlers() {
	pods := s.factory.Core().V1().Pods().Informer()
	_, _ = pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.onPod(nil, o.(*corev1.Pod)) },
		UpdateFunc: func(old, o any) { s.onPod(old.(*corev1.Pod), o.(*corev1.Pod)) },
		DeleteFunc: func(o any) {
			pod, ok := o.(*corev1.Pod)
			if !ok {
				tomb, ok := o.(toolscache.DeletedFinalStateUnknown)
				if !ok {
					return
				}
				if pod, ok = tomb.Obj.(*corev1.Pod); !ok {
					return
				}
			}
			s.queue.remove(pod.UID)
			s.cache.forgetNominated(pod)
			if pod.Spec.NodeName != "" || s.cache.isAssumed(pod.UID) {
				s.cache.removePod(pod)
				s.queue.moveAll() // resources freed
			}
		},
	})
	nodes := s.factory.Core().V1().Nodes().Informer()
	_, _ = nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			s.cache.upsertNode(o.(*corev1.Node))
			s.queue.moveAll()
		},
		UpdateFunc: func(_, o any) {
			s.cache.upsertNode(o.(*corev1.Node))
			s.queue.moveAll()
		},
		DeleteFunc: func(o any) {
			switch n := o.(type) {
			case *corev1.Node:
				s.cache.removeNode(n.Name)
			case toolscache.DeletedFinalStateUnknown:
				if node, ok := n.Obj.(*corev1.Node); ok {
					s.cache.removeNode(node.Name)
				}
			}
		},
	})
}

func (s *Scheduler) onPod(old, pod *corev1.Pod) {
	s.cache.setNominated(pod)
	switch {
	case pod.Spec.NodeName != "":
		s.queue.remove(pod.UID)
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			// Finished pods hold no resources.
			s.cache.removePod(pod)
			s.queue.moveAll()
			return
		}
		s.cache.addPod(pod)
	case pod.DeletionTimestamp != nil:
		s.queue.remove(pod.UID)
	case pod.Spec.SchedulerName == SchedulerName && !s.cache.isAssumed(pod.UID):
		// An assumed pod is being bound; its own updates (such as a
		// condition change) must not schedule it twice.
		s.queue.add(pod)
	}
}

// Run schedules until ctx ends. It may be called again after it returned.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.ran {
		s.reset()
	}
	s.ran = true
	s.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer s.events.Shutdown()
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	for typ, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("scheduler: %v informer did not sync", typ)
		}
	}
	housekept := make(chan struct{})
	go func() { s.housekeeping(ctx); close(housekept) }()
	// The next run's reset replaces what housekeeping reads.
	defer func() { <-housekept }()
	s.log.Info("scheduler started")
	for {
		qp, ok := s.queue.pop(ctx)
		if !ok {
			break
		}
		s.scheduleOneRecovering(ctx, qp)
	}
	s.binds.Wait()
	return nil
}

// housekeepingPeriod is how often housekeeping runs.
const housekeepingPeriod = 200 * time.Millisecond

// housekeeping moves backed-off pods back and expires stale assumptions.
func (s *Scheduler) housekeeping(ctx context.Context) {
	t := s.clock.NewTicker(housekeepingPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			s.queue.flush()
			s.cache.expire()
			a, b, u := s.queue.lengths()
			s.metrics.pending.WithLabelValues("active").Set(float64(a))
			s.metrics.pending.WithLabelValues("backoff").Set(float64(b))
			s.metrics.pending.WithLabelValues("unschedulable").Set(float64(u))
		}
	}
}

// numFeasibleToFind is upstream's adaptive share of nodes to find feasible
// before scoring: all of a small cluster, fewer (but at least 100) of a
// big one.
func numFeasibleToFind(n int) int {
	if n < 100 {
		return n
	}
	pct := max(50-n/125, 5)
	return max(n*pct/100, 100)
}

func (s *Scheduler) prepare(pod *corev1.Pod) *cycleState {
	req := podRequests(pod)
	cpu, mem := scoringRequests(req)
	st := &cycleState{
		pod: pod, requests: req, nonZeroCPU: cpu, nonZeroMem: mem,
		hostPorts:    podHostPorts(pod),
		nodeAffinity: nodeaffinity.Required(pod),
		preferred:    nodeaffinity.Preferred(pod),
	}
	return st
}

// scheduleOneRecovering runs scheduleOne; a panic (in a plugin, say) is
// logged and counted, and the pod retried after backoff, instead of ending
// the process.
func (s *Scheduler) scheduleOneRecovering(ctx context.Context, qp *queuedPod) {
	defer func() {
		if r := recover(); r != nil {
			crash.Recovered(s.log.With("pod", qp.pod.Namespace+"/"+qp.pod.Name), "scheduler", r)
			s.queue.requeue(qp, false)
		}
	}()
	s.scheduleOne(ctx, qp)
}

// scheduleOne runs one scheduling attempt for a pod.
func (s *Scheduler) scheduleOne(ctx context.Context, qp *queuedPod) {
	start := s.clock.Now()
	// Schedule the newest version of the pod, if it still needs it.
	pod, err := s.podLister.Pods(qp.pod.Namespace).Get(qp.pod.Name)
	if err != nil || pod.UID != qp.pod.UID || pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
		s.queue.done(qp.pod.UID)
		return
	}
	qp.pod = pod
	qp.attemptStart = start
	state := s.prepare(pod)
	s.prepareVolumes(state)
	host, diag := s.findNode(state)
	s.metrics.algorithm.Observe(s.clock.Since(start).Seconds())
	if host == "" {
		s.metrics.attempt("unschedulable", start)
		msg := diag.message()
		var cand *candidate
		if diag.preFilter == "" { // evicting pods cannot fix a claim
			cand = s.findVictims(state)
		}
		if cand != nil {
			msg += " preemption: evicting " + strconv.Itoa(len(cand.victims)) + " lower-priority pod(s) on node " + cand.node + "."
		}
		s.queue.requeue(qp, true)
		// As upstream, a pod whose earlier victims are still terminating
		// on its nominated node waits for them instead of preempting more.
		nominated := pod.Status.NominatedNodeName
		if cand != nil && (nominated == "" || !s.cache.hasTerminatingLower(pod, nominated)) {
			s.preempt(ctx, pod, cand)
			nominated = cand.node
		}
		s.reportUnschedulable(ctx, pod, msg, nominated)
		return
	}
	s.cache.assume(pod, host)
	if state.volumes != nil && s.startVolumeBinding(ctx, qp, state, host) {
		return
	}
	s.queue.done(pod.UID)
	s.bindSem <- struct{}{}
	s.binds.Add(1)
	go func() {
		defer func() { <-s.bindSem; s.binds.Done() }()
		defer crash.Recover(s.log, "scheduler")
		s.bind(ctx, qp, host)
	}()
}

// findNode filters nodes, starting where the last attempt stopped, until
// enough feasible ones are found, then scores those. The cache lock is
// held for reading throughout, so the view is consistent.
func (s *Scheduler) findNode(state *cycleState) (string, *diagnosis) {
	c := s.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := len(c.order)
	diag := &diagnosis{nodes: n, preFilter: state.volumeMsg}
	if n == 0 || diag.preFilter != "" {
		return "", diag
	}
	state.affinity = prepareAffinity(state.pod, c.nodes, c.anyAntiAffinityLocked())
	state.spread = prepareSpread(state.pod, c.nodes, state.nodeAffinity, &s.spreadCounts)

	want := numFeasibleToFind(n)
	feasible := make([]*nodeInfo, 0, min(want, n))
	start := s.nextStart % n
	processed := 0
	for ; processed < n && len(feasible) < want; processed++ {
		ni := c.nodes[c.order[(start+processed)%n]]
		if reasons := s.filter(state, c.withNominatedLocked(state.pod, ni)); reasons != nil {
			diag.add(reasons)
			continue
		}
		feasible = append(feasible, ni)
	}
	s.nextStart = (start + processed) % n
	switch len(feasible) {
	case 0:
		return "", diag
	case 1:
		return feasible[0].node.Name, diag
	}
	return s.pick(state, feasible), diag
}

func (s *Scheduler) filter(state *cycleState, ni *nodeInfo) []string {
	filters := s.filters
	if state.volumes != nil {
		filters = s.volumeFilters
	}
	for _, f := range filters {
		if reasons := f.Filter(state, ni); len(reasons) > 0 {
			return reasons
		}
	}
	return nil
}

// pick scores the feasible nodes and returns the best, breaking ties at
// random so equal nodes share the load.
func (s *Scheduler) pick(state *cycleState, feasible []*nodeInfo) string {
	total := make([]int64, len(feasible))
	scores := make([]int64, len(feasible))
	for _, p := range s.scores {
		if skipScore(p, state) {
			continue
		}
		for i, ni := range feasible {
			scores[i] = p.Score(state, ni)
		}
		p.Normalize(scores)
		w := p.Weight()
		for i := range scores {
			total[i] += scores[i] * w
		}
	}
	best, ties := 0, 1
	for i := 1; i < len(total); i++ {
		switch {
		case total[i] > total[best]:
			best, ties = i, 1
		case total[i] == total[best]:
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return feasible[best].node.Name
}

// skipScore leaves out plugins with nothing to say about this pod; their
// normalised score would be the same on every node.
func skipScore(p scorePlugin, s *cycleState) bool {
	switch p.(type) {
	case nodeAffinity:
		return len(s.preferred) == 0
	case interPodAffinity:
		return s.affinity == nil || len(s.affinity.preferred) == 0
	case podTopologySpread:
		return s.spread == nil
	}
	return false
}

// bind writes the placement. On failure the assumption is dropped and the
// pod retried after a backoff.
func (s *Scheduler) bind(ctx context.Context, qp *queuedPod, host string) {
	pod := qp.pod
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: host},
	}, metav1.CreateOptions{})
	if err != nil {
		s.cache.forget(pod.UID)
		s.metrics.attempt("error", qp.attemptStart)
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		s.log.Warn("bind failed", "pod", pod.Namespace+"/"+pod.Name, "node", host, "err", err)
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		s.queue.retry(qp)
		return
	}
	s.cache.finishBinding(pod.UID)
	s.metrics.attempt("scheduled", qp.attemptStart)
	s.metrics.e2e.Observe(s.clock.Since(qp.firstSeen).Seconds())
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, host)
}

// reportUnschedulable records why a pod fits nowhere, where users look:
// the PodScheduled condition and a FailedScheduling event.
func (s *Scheduler) reportUnschedulable(ctx context.Context, pod *corev1.Pod, msg, nominated string) {
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == msg && pod.Status.NominatedNodeName == nominated {
			return
		}
	}
	p := pod.DeepCopy()
	p.Status.NominatedNodeName = nominated
	cond := corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: msg, LastTransitionTime: metav1.NewTime(s.clock.Now()),
	}
	replaced := false
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			p.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		p.Status.Conditions = append(p.Status.Conditions, cond)
	}
	if _, err := s.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		s.log.Warn("update pod condition", "pod", p.Namespace+"/"+p.Name, "err", err)
	}
}
