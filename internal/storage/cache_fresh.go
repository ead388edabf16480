package storage

import (
	"context"
	"sync"
)

// revReader shares one read of etcd's current revision among the callers
// that wait for it at the same time. A caller joins the next read that has
// not started yet, never one already in flight, so the revision it gets
// was read after it asked: as fresh as a read of its own.
type revReader struct {
	read func(context.Context) (int64, error)

	mu      sync.Mutex
	running bool
	next    *revRound // the round collecting callers; nil if none
}

type revRound struct {
	done   chan struct{}
	rev    int64
	err    error
	shared int // callers that joined the round
}

// get returns a revision read after the call began.
func (r *revReader) get(ctx context.Context) (int64, error) {
	r.mu.Lock()
	if r.next == nil {
		r.next = &revRound{done: make(chan struct{})}
	}
	round := r.next
	round.shared++
	if !r.running {
		r.running, r.next = true, nil
		go r.run(round)
	}
	r.mu.Unlock()
	select {
	case <-round.done:
		return round.rev, round.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run reads the revision for round, then for the round that gathered
// meanwhile, until none is waiting. The read is not tied to any one
// caller's context: callers that give up leave the others served.
func (r *revReader) run(round *revRound) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		round.rev, round.err = r.read(ctx)
		cancel()
		close(round.done)
		r.mu.Lock()
		round = r.next
		if round == nil {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.next = nil
		r.mu.Unlock()
	}
}

// progressRequester sends etcd progress requests for the cache's watch on
// behalf of waiters. A request made while one is being sent causes exactly
// one more send after it, so every waiter is covered by a request sent
// after it asked, and a crowd of waiters costs one or two requests.
type progressRequester struct {
	send func(context.Context) error

	mu      sync.Mutex
	running bool
	pending bool
}

// request makes sure a progress request is sent after this call; it does
// not wait for it.
func (p *progressRequester) request() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		p.pending = true
		return
	}
	p.running = true
	go p.run()
}

func (p *progressRequester) run() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		_ = p.send(ctx) // a lost request is retried by the waiters' next round
		cancel()
		p.mu.Lock()
		if !p.pending {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.pending = false
		p.mu.Unlock()
	}
}
