package scheduler

import (
	"container/heap"
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Backoff bounds for pods that failed to schedule, as upstream's defaults.
const (
	initialBackoff = time.Second
	maxBackoff     = 10 * time.Second
	// unschedulableTimeout re-tries pods nothing has woken for a while.
	unschedulableTimeout = 5 * time.Minute
)

// queuedPod is a pod waiting to be scheduled.
type queuedPod struct {
	pod       *corev1.Pod
	attempts  int
	firstSeen time.Time // for the end-to-end latency metric
	// attemptStart is when the current scheduling attempt began, for
	// scheduler_scheduling_attempt_duration_seconds.
	attemptStart time.Time
	readyAt      time.Time // end of backoff
	parkedAt     time.Time // when it became unschedulable
	moveSeq      uint64    // the queue's move count when the pod was popped
	index        int       // in the active heap; -1 when not there
}

func priorityOf(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// activeHeap orders pods by priority, then by age.
type activeHeap []*queuedPod

func (h activeHeap) Len() int { return len(h) }
func (h activeHeap) Less(i, j int) bool {
	pi, pj := priorityOf(h[i].pod), priorityOf(h[j].pod)
	if pi != pj {
		return pi > pj
	}
	return h[i].pod.CreationTimestamp.Before(&h[j].pod.CreationTimestamp)
}
func (h activeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *activeHeap) Push(x any) {
	q := x.(*queuedPod)
	q.index = len(*h)
	*h = append(*h, q)
}
func (h *activeHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	q.index = -1
	return q
}

// queue holds pods to schedule: an active heap, pods backing off after a
// failed attempt, and unschedulable pods parked until the cluster changes.
type queue struct {
	mu            sync.Mutex
	wake          chan struct{} // signalled when active gains a pod
	active        activeHeap
	backoff       map[types.UID]*queuedPod
	unschedulable map[types.UID]*queuedPod
	all           map[types.UID]*queuedPod // every queued pod, by uid
	inFlight      map[types.UID]*queuedPod // popped, being scheduled
	// moves counts requests to wake unschedulable pods; a pod that fails
	// after one arrived during its attempt backs off instead of parking,
	// since the change may be what it waited for.
	moves uint64
	clock clock.PassiveClock
}

func newQueue(clk clock.PassiveClock) *queue {
	return &queue{
		wake:          make(chan struct{}, 1),
		backoff:       map[types.UID]*queuedPod{},
		unschedulable: map[types.UID]*queuedPod{},
		all:           map[types.UID]*queuedPod{},
		inFlight:      map[types.UID]*queuedPod{},
		clock:         clk,
	}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// add queues a new pending pod, or refreshes one already queued.
func (q *queue) add(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp, ok := q.all[pod.UID]; ok {
		qp.pod = pod
		if _, parked := q.unschedulable[pod.UID]; parked {
			// The pod changed; it may fit now.
			delete(q.unschedulable, pod.UID)
			q.toActiveLocked(qp)
		} else if qp.index >= 0 {
			heap.Fix(&q.active, qp.index)
		}
		return
	}
	if qp, ok := q.inFlight[pod.UID]; ok {
		qp.pod = pod
		return
	}
	qp := &queuedPod{pod: pod, firstSeen: q.clock.Now(), index: -1}
	q.all[pod.UID] = qp
	q.toActiveLocked(qp)
}

func (q *queue) toActiveLocked(qp *queuedPod) {
	heap.Push(&q.active, qp)
	q.signal()
}

// remove forgets a pod (deleted, or bound by someone else).
func (q *queue) remove(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp, ok := q.all[uid]
	if !ok {
		delete(q.inFlight, uid)
		return
	}
	if qp.index >= 0 {
		heap.Remove(&q.active, qp.index)
	}
	delete(q.backoff, uid)
	delete(q.unschedulable, uid)
	delete(q.all, uid)
	delete(q.inFlight, uid)
}

// pop blocks until a pod is active or ctx ends.
func (q *queue) pop(ctx context.Context) (*queuedPod, bool) {
	for {
		q.mu.Lock()
		if q.active.Len() > 0 {
			qp := heap.Pop(&q.active).(*queuedPod)
			delete(q.all, qp.pod.UID)
			q.inFlight[qp.pod.UID] = qp
			qp.moveSeq = q.moves
			if q.active.Len() > 0 {
				q.signal()
			}
			q.mu.Unlock()
			return qp, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-q.wake:
		}
	}
}

// done ends an attempt that succeeded (the pod is assumed and binding).
func (q *queue) done(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, uid)
}

// requeue puts back a pod whose attempt failed. unschedulable pods wait for
// a cluster change; others (bind errors) only back off.
func (q *queue) requeue(qp *queuedPod, unschedulable bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.inFlight[qp.pod.UID]; !ok {
		return // deleted while in flight
	}
	delete(q.inFlight, qp.pod.UID)
	qp.attempts++
	qp.readyAt = q.clock.Now().Add(backoffFor(qp.attempts))
	q.all[qp.pod.UID] = qp
	if unschedulable && qp.moveSeq == q.moves {
		qp.parkedAt = q.clock.Now()
		q.unschedulable[qp.pod.UID] = qp
		return
	}
	q.backoff[qp.pod.UID] = qp
}

func backoffFor(attempts int) time.Duration {
	d := initialBackoff
	for i := 1; i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// moveAll wakes every unschedulable pod: something changed that may let it
// fit. Pods still backing off go to the backoff set first.
func (q *queue) moveAll() { q.moveMatching(nil) }

// moveMatching wakes the unschedulable pods match accepts (all when nil).
func (q *queue) moveMatching(match func(*corev1.Pod) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moves++
	now := q.clock.Now()
	for uid, qp := range q.unschedulable {
		if match != nil && !match(qp.pod) {
			continue
		}
		delete(q.unschedulable, uid)
		if now.Before(qp.readyAt) {
			q.backoff[uid] = qp
			continue
		}
		q.toActiveLocked(qp)
	}
}

// flush moves pods whose backoff ended to active, and pods parked for too
// long back into play.
func (q *queue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	for uid, qp := range q.backoff {
		if !now.Before(qp.readyAt) {
			delete(q.backoff, uid)
			q.toActiveLocked(qp)
		}
	}
	for uid, qp := range q.unschedulable {
		if now.Sub(qp.parkedAt) > unschedulableTimeout {
			delete(q.unschedulable, uid)
			q.toActiveLocked(qp)
		}
	}
}

// lengths reports the sizes of the active, backoff and unschedulable sets.
func (q *queue) lengths() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), len(q.backoff), len(q.unschedulable)
}

// retry backs off a pod whose binding failed after its attempt ended.
func (q *queue) retry(qp *queuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.all[qp.pod.UID]; ok {
		return
	}
	qp.attempts++
	qp.readyAt = q.clock.Now().Add(backoffFor(qp.attempts))
	q.all[qp.pod.UID] = qp
	q.backoff[qp.pod.UID] = qp
}
