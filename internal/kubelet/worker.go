package kubelet

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

// podWorker serialises everything the kubelet does for one pod: at most one
// sync runs at a time, and wake-ups that arrive during a sync coalesce into
// one more.
type podWorker struct {
	uid    types.UID
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	pod     *v1.Pod
	removed bool // the pod object is gone from the API

	admission atomic.Int32 // admissionPending, admissionAdmitted or admissionRejected (admit.go)

	// Owned by the worker goroutine.
	waiting   map[string]waitingReason // why a container is not running
	failure   *waitingReason           // why the kubelet ended the pod (Failed), if it did
	started   time.Time                // when the worker first saw the pod
	lastPhase v1.PodPhase
}

// waitingReason is a container's Waiting state that the runtime cannot
// tell: image pull errors, config errors, back-off.
type waitingReason struct {
	reason, message string
}

func (w *podWorker) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) snapshot() (*v1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.removed
}

func (w *podWorker) currentPod() *v1.Pod {
	p, _ := w.snapshot()
	return p
}

func (w *podWorker) stop() {
	w.cancel()
	<-w.done
}

// podChanged routes an informer add/update to the pod's worker, starting it
// when the pod is new to this node.
func (k *Kubelet) podChanged(ctx context.Context, obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	w := k.worker(ctx, pod.UID, pod)
	if w == nil {
		return
	}
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	w.notify()
}

// podUpdated wakes the worker unless only the status changed: the status
// is mostly the kubelet's own write coming back, and syncing on it would
// double the runtime calls of every pod start.
func (k *Kubelet) podUpdated(ctx context.Context, old, obj any) {
	o, ok1 := old.(*v1.Pod)
	n, ok2 := obj.(*v1.Pod)
	if ok1 && ok2 && onlyStatusChanged(o, n) {
		k.workersMu.Lock()
		w := k.workers[n.UID]
		k.workersMu.Unlock()
		if w != nil {
			w.mu.Lock()
			w.pod = n
			w.mu.Unlock()
			return
		}
	}
	k.podChanged(ctx, obj)
}

func onlyStatusChanged(o, n *v1.Pod) bool {
	return o.Generation == n.Generation && o.DeletionTimestamp.Equal(n.DeletionTimestamp) &&
		equality.Semantic.DeepEqual(o.Spec, n.Spec) && equality.Semantic.DeepEqual(o.Labels, n.Labels) &&
		equality.Semantic.DeepEqual(o.Annotations, n.Annotations) &&
		o.Status.Phase == n.Status.Phase && readinessGatesEqual(o, n)
}

// readinessGatesEqual compares the conditions readiness gates look at,
// which other components set.
func readinessGatesEqual(o, n *v1.Pod) bool {
	for _, g := range n.Spec.ReadinessGates {
		var a, b v1.ConditionStatus
		for _, c := range o.Status.Conditions {
			if c.Type == g.ConditionType {
				a = c.Status
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == g.ConditionType {
				b = c.Status
			}
		}
		if a != b {
			return false
		}
	}
	return true
}

func (k *Kubelet) podDeleted(obj any) {
	obj = informerutil.Unwrap(obj)
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	k.workersMu.Lock()
	w := k.workers[pod.UID]
	k.workersMu.Unlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	w.pod = pod
	w.removed = true
	w.mu.Unlock()
	w.notify()
}

// namespaceObjectChanged wakes the pods of a namespace whose Service
// changed.
func (k *Kubelet) namespaceObjectChanged(obj any) {
	if m, ok := obj.(interface{ GetNamespace() string }); ok {
		k.wakeNamespace(m.GetNamespace())
	}
}

// wakeNamespace wakes the workers of the pods in namespace ns.
func (k *Kubelet) wakeNamespace(ns string) {
	k.workersMu.Lock()
	defer k.workersMu.Unlock()
	for _, w := range k.workers {
		if p := w.currentPod(); p != nil && p.Namespace == ns {
			w.notify()
		}
	}
}

// worker returns the pod's worker, starting one if needed; nil while the
// kubelet shuts down.
func (k *Kubelet) worker(ctx context.Context, uid types.UID, pod *v1.Pod) *podWorker {
	k.workersMu.Lock()
	defer k.workersMu.Unlock()
	if w, ok := k.workers[uid]; ok {
		return w
	}
	if k.stopping {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &podWorker{
		uid: uid, pod: pod, wake: make(chan struct{}, 1), ctx: wctx, cancel: cancel,
		done: make(chan struct{}), waiting: map[string]waitingReason{}, started: k.clock.Now(),
	}
	k.workers[uid] = w
	k.workersWG.Add(1)
	go k.runWorker(w)
	return w
}

func (k *Kubelet) runWorker(w *podWorker) {
	defer k.workersWG.Done()
	defer close(w.done)
	timer := k.clock.NewTimer(0)
	defer timer.Stop()
	for first := true; ; first = false {
		byTimer := false
		select {
		case <-w.ctx.Done():
			return
		case <-w.wake:
		case <-timer.C():
			byTimer = true
		}
		start := k.clock.Now()
		pod, removed := w.snapshot()
		terminating := removed || (pod != nil && pod.DeletionTimestamp != nil)
		next, finished := k.syncPod(w.ctx, w)
		k.metrics.podWorker.WithLabelValues(syncOperation(first, terminating, byTimer)).Observe(k.clock.Since(start).Seconds())
		if finished {
			k.untrackPodObjects(w.uid)
			k.workersMu.Lock()
			delete(k.workers, w.uid)
			k.workersMu.Unlock()
			w.cancel()
			return
		}
		if next <= 0 || next > k.cfg.SyncPeriod {
			next = k.cfg.SyncPeriod
		}
		if !timer.Stop() {
			select {
			case <-timer.C():
			default:
			}
		}
		timer.Reset(next)
	}
}
