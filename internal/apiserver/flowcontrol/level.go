package flowcontrol

import (
	"context"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"
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

// bounds are a level's seats from its configuration: nominal is its share
// of the server's seats, min what remains after lending all it may, max
// what it may reach by borrowing.
type bounds struct {
	nominal, min, max int
}

// priorityLevel dispatches the requests of one PriorityLevelConfiguration.
// Exempt levels only count; limited ones hold at most limit seats at once
// (a request takes one or, for a LIST, more) and queue the rest fairly
// across flows: a flow is dealt a hand of queues by shuffle sharding and
// joins the shortest; freed seats go to the non-empty queue with the fewest
// seats executing, so a heavy flow can hold no more seats than a light one
// that keeps asking. The limit moves within bounds as levels borrow
// (borrow.go).
type priorityLevel struct {
	name   string // immutable, as exempt: a level changing type is replaced
	exempt bool
	clock  clock.PassiveClock

	mu       sync.Mutex
	shares   int32
	bounds   bounds
	limit    int // current seats
	maxSeats int // the most seats one request may take here
	q        queuing
	queues   []*fqueue
	// executing counts seats in use; waiting the queued requests and
	// waitingSeats the seats they ask for.
	executing, waiting, waitingSeats int
	next                             int // where the search for a fair queue starts (round robin)
	retry                            retryAfter
	demand                           demandIntegrator
	stats                            demandStats
}

// fqueue is one FIFO of waiting requests and the seats of the requests it
// has dispatched that still execute.
type fqueue struct {
	waiters   []*waiter
	executing int
}

type waiter struct {
	ready      chan struct{}
	dispatched bool
	q          *fqueue
	seats      int
}

func newPriorityLevel(name string, exempt bool, clk clock.PassiveClock) *priorityLevel {
	pl := &priorityLevel{name: name, exempt: exempt, clock: clk}
	pl.demand.start(clk.Now())
	return pl
}

// configure sets the level's seats and queues. A new level starts at its
// nominal seats less half of what it may lend, as upstream; a kept one
// keeps its current seats until the next adjustment. Requests waiting in
// queues that disappear move to the new ones; none is dropped.
func (pl *priorityLevel) configure(shares int32, b bounds, maxSeats int, q queuing, fresh bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.shares, pl.bounds, pl.maxSeats = shares, b, maxSeats
	if fresh {
		pl.limit = b.nominal - (b.nominal-b.min)/2
	}
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

// fitsLocked reports whether a request of the given seats may start now.
// One wider than the whole limit starts alone, as upstream, so that it
// cannot wait forever.
func (pl *priorityLevel) fitsLocked(seats int) bool {
	if seats > pl.limit {
		return pl.executing == 0
	}
	return pl.executing+seats <= pl.limit
}

// noteDemandLocked feeds the seats in use and asked for to the integrator
// that borrowing reads.
func (pl *priorityLevel) noteDemandLocked() {
	pl.demand.set(pl.clock.Now(), float64(pl.executing+pl.waitingSeats))
}

// acquire waits for the seats of a request of the flow with the given hash.
// It returns the queue to credit on release and the seats taken (seats
// capped by the level's maximum), or a rejection.
func (pl *priorityLevel) acquire(ctx context.Context, hash uint64, seats int, waitLimit time.Duration, m *schemaMetrics) (*fqueue, int, error) {
	pl.mu.Lock()
	seats = max(1, min(seats, pl.maxSeats))
	if pl.exempt {
		pl.executing += seats
		pl.noteDemandLocked()
		pl.mu.Unlock()
		return nil, seats, nil
	}
	if len(pl.queues) == 0 {
		if pl.fitsLocked(seats) {
			pl.executing += seats
			pl.noteDemandLocked()
			pl.mu.Unlock()
			return nil, seats, nil
		}
		pl.mu.Unlock()
		return nil, 0, &errReject{reasonConcurrencyLimit}
	}
	q := pl.shortestInHand(hash)
	if pl.waiting == 0 && pl.fitsLocked(seats) {
		pl.executing += seats
		q.executing += seats
		pl.noteDemandLocked()
		pl.mu.Unlock()
		return q, seats, nil
	}
	if len(q.waiters) >= pl.q.lengthLimit {
		pl.mu.Unlock()
		return nil, 0, &errReject{reasonQueueFull}
	}
	w := &waiter{ready: make(chan struct{}), q: q, seats: seats}
	q.waiters = append(q.waiters, w)
	pl.waiting++
	pl.waitingSeats += seats
	pl.noteDemandLocked()
	pl.mu.Unlock()
	m.inQueue.Inc()
	defer m.inQueue.Dec()

	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	var reason string
	select {
	case <-w.ready:
		return w.q, seats, nil
	case <-timer.C:
		reason = reasonTimeout
	case <-ctx.Done():
		reason = reasonCancelled
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if w.dispatched {
		// A seat came as time ran out: take it rather than waste it.
		return w.q, seats, nil
	}
	wq := w.q
	for i, x := range wq.waiters {
		if x == w {
			wq.waiters = append(wq.waiters[:i], wq.waiters[i+1:]...)
			break
		}
	}
	pl.waiting--
	pl.waitingSeats -= seats
	// The head of a queue may have been waiting for this one's seats.
	pl.dispatchLocked()
	pl.noteDemandLocked()
	return nil, 0, &errReject{reason}
}

// release frees the seats of a request dispatched from q (nil for exempt
// and rejecting levels) and gives them to the next fair waiters.
func (pl *priorityLevel) release(q *fqueue, seats int) {
	pl.mu.Lock()
	pl.executing -= seats
	if q != nil {
		q.executing -= seats
	}
	pl.dispatchLocked()
	pl.noteDemandLocked()
	pl.mu.Unlock()
}

// setLimit installs a new current limit and dispatches what now fits.
func (pl *priorityLevel) setLimit(limit int) {
	pl.mu.Lock()
	pl.limit = limit
	pl.dispatchLocked()
	pl.mu.Unlock()
}

// dispatchLocked hands free seats to waiting requests, each time to the
// non-empty queue with the fewest seats executing, ties in round-robin
// order. When that queue's head does not fit, dispatching stops until
// seats free up, as upstream: a wide request is not overtaken forever by
// narrow ones, and a flow's requests start in their order.
func (pl *priorityLevel) dispatchLocked() {
	for pl.waiting > 0 {
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
		if best == nil || !pl.fitsLocked(best.waiters[0].seats) {
			return
		}
		pl.next = (bestIdx + 1) % n
		w := best.waiters[0]
		best.waiters[0] = nil
		best.waiters = best.waiters[1:]
		pl.waiting--
		pl.waitingSeats -= w.seats
		pl.executing += w.seats
		best.executing += w.seats
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
