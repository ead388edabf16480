package flowcontrol

import (
	"context"
	"sync/atomic"
)

// watchSeats are the seats of a WATCH, which it holds only until it is
// initialized, as upstream: it has sent its initial events, or started
// from a given resourceVersion with none to send. The request's end frees
// them if initialization never comes (an error, the client going away).
type watchSeats struct {
	t        Ticket
	released atomic.Bool
}

func (w *watchSeats) release() {
	if w.released.CompareAndSwap(false, true) {
		w.t.Done()
	}
}

// ForWatch returns t as the ticket of a WATCH: its seats are freed once,
// by WatchInitialized on a context from WithTicket or by Done, whichever
// comes first. The zero Ticket stays zero.
func (t Ticket) ForWatch() Ticket {
	if t.level == nil || t.watch != nil {
		return t
	}
	return Ticket{watch: &watchSeats{t: t}, seats: t.seats}
}

type watchKey struct{}

// WithTicket returns ctx carrying a watch ticket's seats for
// WatchInitialized; other tickets leave ctx as it is (no allocation).
func WithTicket(ctx context.Context, t Ticket) context.Context {
	if t.watch == nil {
		return ctx
	}
	return context.WithValue(ctx, watchKey{}, t.watch)
}

// WatchInitialized tells the dispatcher that the WATCH of ctx has sent its
// initial events, freeing its seats while it keeps streaming, as upstream's
// utilflowcontrol.WatchInitialized. It does nothing for other requests or
// when called again.
func WatchInitialized(ctx context.Context) {
	if w, ok := ctx.Value(watchKey{}).(*watchSeats); ok {
		w.release()
	}
}

// RequestDelegated tells the dispatcher that the request of ctx has been
// handed to an aggregated API server, whose own priority and fairness
// limits it: a WATCH frees its seats here, as upstream.
func RequestDelegated(ctx context.Context) { WatchInitialized(ctx) }
