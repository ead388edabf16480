package flowcontrol

import (
	"context"
	"sync"
	"testing"
	"time"
)

func admitWatch(t *testing.T, c *Controller, user string) (Ticket, context.Context) {
	t.Helper()
	r := req(user)
	r.Verb = "watch"
	tk, _, err := c.Admit(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	tk = tk.ForWatch()
	return tk, WithTicket(context.Background(), tk)
}

func TestWatchHoldsSeatsUntilInitialized(t *testing.T) {
	c := testController(t, 1, 1, 10, time.Minute)
	pl := c.level("lvl")
	w1, ctx1 := admitWatch(t, c, "w1")
	w2, ctx2 := admitWatch(t, c, "w2")
	if got := executingIn(pl); got != 2 {
		t.Fatalf("%d seats executing, want the watches' 2", got)
	}

	// A request of the level queues behind the initializing watches.
	got := make(chan Ticket, 1)
	go func() {
		tk, _, err := c.Admit(context.Background(), req("other"))
		if err != nil {
			t.Error(err)
		}
		got <- tk
	}()
	eventually(t, "the request to queue", func() bool { return waitingIn(pl) == 1 })
	select {
	case <-got:
		t.Fatal("request ran while both watches were initializing")
	default:
	}

	// The first watch is initialized: its seat goes to the request, and
	// signalling again or ending the watch frees nothing more.
	WatchInitialized(ctx1)
	var other Ticket
	select {
	case other = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("request not dispatched after the watch was initialized")
	}
	WatchInitialized(ctx1)
	w1.Done()
	if got := executingIn(pl); got != 2 {
		t.Fatalf("%d seats executing, want the request's and w2's", got)
	}

	// The second watch ends before initialization (error, client gone):
	// Done frees its seat once, and a late signal does nothing.
	w2.Done()
	WatchInitialized(ctx2)
	w2.Done()
	other.Done()
	if got := executingIn(pl); got != 0 {
		t.Fatalf("%d seats executing after all ended, want 0", got)
	}
}

func TestWatchSeatsReleasedOnceUnderRace(t *testing.T) {
	c := testController(t, 1, 1, 10, time.Minute)
	pl := c.level("lvl")
	for range 50 {
		tk, ctx := admitWatch(t, c, "w")
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					WatchInitialized(ctx)
				} else {
					tk.Done()
				}
			}()
		}
		wg.Wait()
		if got := executingIn(pl); got != 0 {
			t.Fatalf("%d seats executing, want 0", got)
		}
	}
}

func TestOtherTicketsIgnoreWatchInitialized(t *testing.T) {
	c := testController(t, 1, 1, 10, time.Minute)
	pl := c.level("lvl")
	tk, _, err := c.Admit(context.Background(), req("u"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if WithTicket(ctx, tk) != ctx {
		t.Fatal("a non-watch ticket changed the context")
	}
	if n := testing.AllocsPerRun(100, func() { WatchInitialized(WithTicket(ctx, tk)) }); n != 0 {
		t.Fatalf("%v allocations for a non-watch ticket, want 0", n)
	}
	if got := executingIn(pl); got != 1 {
		t.Fatalf("%d seats executing, want the request's 1", got)
	}
	tk.Done()
	if (Ticket{}).ForWatch() != (Ticket{}) {
		t.Fatal("the zero ticket became a watch ticket")
	}
	(Ticket{}).ForWatch().Done()
	if got := executingIn(pl); got != 0 {
		t.Fatalf("%d seats executing, want 0", got)
	}
}

func TestWatchSeats(t *testing.T) {
	for _, tc := range []struct {
		count int
		send  bool
		want  int
	}{
		{5000, false, 1}, // legacy initial events cost nothing extra, as upstream
		{0, true, 1},
		{250, true, 3},
		{5000, true, 10},
	} {
		if got := WatchSeats(tc.count, tc.send); got != tc.want {
			t.Errorf("WatchSeats(%d, %v) = %d, want %d", tc.count, tc.send, got, tc.want)
		}
	}
}
