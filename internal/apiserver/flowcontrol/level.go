package flowcontrol

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Reasons for a rejection, as upstream's rejected_requests_total labels.
const (
	reasonQueueFull        = "queue-full"
	reasonConcurrencyLimit = "concurrency-limit"
	reasonTimeout          = "time-out"
	reasonCancelled        = "cancelled"
)

// queuing is a limited level's queuing configuration; zero queues means
// the level rejects instead of queuing.
type queuing struct {
	queues, handSize, lengthLimit int
}

// priorityLevel dispatches the requests of one PriorityLevelConfiguration.
// Exempt levels only count; limited ones run at most limit requests at once
// and queue the rest fairly across flows: a flow is dealt a hand of queues
// by shuffle sharding and joins the shortest; a freed seat goes to the
// non-empty queue with the fewest requests executing, so a heavy flow can
// hold no more seats than a light one that keeps asking.
type priorityLevel struct {
	name   string // immutable, as exempt: a level changing type is replaced
	exempt bool
	shares int32

	mu        sync.Mutex
	limit     int
	q         queuing
	queues    []*fqueue
	executing int
	waiting   int
	next      int // where the search for a fair queue starts (round robin)
	retry     retryAfter
}

// fqueue is one FIFO of waiting requests and the count of requests it has
// dispatched that still execute.
type fqueue struct {
	waiters   []*waiter
	executing int
}

type waiter struct {
	ready      chan struct{}
	dispatched bool
	q          *fqueue
}

func newPriorityLevel(name string, exempt bool) *priorityLevel {
	return &priorityLevel{name: name, exempt: exempt}
}

// configure sets the level's seats and queues. Requests waiting in queues
// that disappear move to the new ones; none is dropped.
func (pl *priorityLevel) configure(shares int32, limit int, q queuing) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.shares, pl.limit = shares, limit
	if q != pl.q {
		old := pl.queues
		pl.q = q
		pl.queues = make([]*fqueue, q.queues)
		for i := range pl.queues {
			pl.queues[i] = &fqueue{}
		}
		pl.next = 0
		for i, oq := range old {
			if len(pl.queues) == 0 {
				// Now a rejecting level: queued requests get their seat
				// or their rejection as seats free up.
				pl.queues = []*fqueue{{}}
			}
			nq := pl.queues[i%len(pl.queues)]
			for _, w := range oq.waiters {
				w.q = nq
				nq.waiters = append(nq.waiters, w)
			}
		}
	}
	pl.dispatchLocked()
}

// errReject is a request turned away, with the reason for the metrics.
type errReject struct{ reason string }

func (e *errReject) Error() string { return "rejected: " + e.reason }

// acquire waits for a seat for a request of the flow with the given hash.
// It returns the queue to credit on release, or a rejection.
func (pl *priorityLevel) acquire(ctx context.Context, hash uint64, waitLimit time.Duration, m *schemaMetrics) (*fqueue, error) {
	pl.mu.Lock()
	if pl.exempt {
		pl.executing++
		pl.mu.Unlock()
		return nil, nil
	}
	if len(pl.queues) == 0 {
		if pl.executing < pl.limit {
			pl.executing++
			pl.mu.Unlock()
			return nil, nil
		}
		pl.mu.Unlock()
		return nil, &errReject{reasonConcurrencyLimit}
	}
	q := pl.shortestInHand(hash)
	if pl.executing < pl.limit && pl.waiting == 0 {
		pl.executing++
		q.executing++
		pl.mu.Unlock()
		return q, nil
	}
	if len(q.waiters) >= pl.q.lengthLimit {
		pl.mu.Unlock()
		return nil, &errReject{reasonQueueFull}
	}
	w := &waiter{ready: make(chan struct{}), q: q}
	q.waiters = append(q.waiters, w)
	pl.waiting++
	pl.mu.Unlock()
	m.inQueue.Inc()
	defer m.inQueue.Dec()

	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	var reason string
	select {
	case <-w.ready:
		return w.q, nil
	case <-timer.C:
		reason = reasonTimeout
	case <-ctx.Done():
		reason = reasonCancelled
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if w.dispatched {
		// A seat came as time ran out: take it rather than waste it.
		return w.q, nil
	}
	wq := w.q
	for i, x := range wq.waiters {
		if x == w {
			wq.waiters = append(wq.waiters[:i], wq.waiters[i+1:]...)
			break
		}
	}
	pl.waiting--
	return nil, &errReject{reason}
}

// release frees the seat of a request dispatched from q (nil for exempt
// and rejecting levels) and gives it to the next fair waiter.
func (pl *priorityLevel) release(q *fqueue) {
	pl.mu.Lock()
	pl.executing--
	if q != nil {
		q.executing--
	}
	pl.dispatchLocked()
	pl.mu.Unlock()
}

// dispatchLocked hands free seats to waiting requests, each time to the
// non-empty queue with the fewest executing requests, ties in round-robin
// order.
func (pl *priorityLevel) dispatchLocked() {
	for pl.waiting > 0 && pl.executing < pl.limit {
		n := len(pl.queues)
		var best *fqueue
		bestIdx := 0
		for i := 0; i < n; i++ {
			idx := (pl.next + i) % n
			q := pl.queues[idx]
			if len(q.waiters) > 0 && (best == nil || q.executing < best.executing) {
				best, bestIdx = q, idx
			}
		}
		if best == nil {
			return
		}
		pl.next = (bestIdx + 1) % n
		w := best.waiters[0]
		best.waiters[0] = nil
		best.waiters = best.waiters[1:]
		pl.waiting--
		pl.executing++
		best.executing++
		w.dispatched = true
		close(w.ready)
	}
}

// shortestInHand returns, of the flow's hand of queues, the one with the
// fewest waiting and executing requests.
func (pl *priorityLevel) shortestInHand(hash uint64) *fqueue {
	var best *fqueue
	deal(hash, len(pl.queues), pl.q.handSize, func(i int) {
		q := pl.queues[i]
		if best == nil || len(q.waiters)+q.executing < len(best.waiters)+best.executing {
			best = q
		}
	})
	return best
}

// deal is shuffle sharding: it draws hand distinct cards out of a deck of
// n from hash, as mixed-radix digits, calling fn with each.
func deal(hash uint64, n, hand int, fn func(card int)) {
	hand = min(hand, n)
	var stack [16]int
	dealt := stack[:0] // sorted; a hand rarely exceeds 16 cards
	for i := 0; i < hand; i++ {
		remaining := uint64(n - i)
		v := int(hash % remaining)
		hash /= remaining
		// v counts among the cards not dealt yet: skip the dealt ones.
		j := 0
		for ; j < len(dealt) && dealt[j] <= v; j++ {
			v++
		}
		dealt = slices.Insert(dealt, j, v)
		fn(v)
	}
}
