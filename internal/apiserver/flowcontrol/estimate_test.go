package flowcontrol

import (
	"context"
	"fmt"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"
)

func TestListSeats(t *testing.T) {
	tests := []struct {
		count int
		limit string
		want  int
	}{
		{5000, "", 10}, // capped
		{150, "", 2},
		{100, "", 1},
		{101, "", 2},
		{0, "", 1}, // never zero
		{5000, "150", 2},
		{5000, "0", 10}, // 0 means no limit
		{50, "500", 1},  // a limit above the count changes nothing
		{5000, "x", 10}, // unparsable: the maximum, as upstream
	}
	for _, tc := range tests {
		if got := ListSeats(tc.count, tc.limit); got != tc.want {
			t.Errorf("ListSeats(%d, %q) = %d, want %d", tc.count, tc.limit, got, tc.want)
		}
	}
}

// seatController has one queuing level "lvl" of the given nominal seats
// (lending and borrowing nothing) for every authenticated user.
func seatController(t *testing.T, limit, shares int32, hand int32) *Controller {
	t.Helper()
	lvl := apfdefaults.LimitedLevel("lvl", shares, 0, &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: hand, QueueLengthLimit: 50})
	fs := apfdefaults.FlowSchema("users", "lvl", 500, flowcontrolv1.FlowDistinguisherMethodByUserType, apfdefaults.Everything(apfdefaults.Groups("system:authenticated")))
	c := New(Options{ConcurrencyLimit: int(limit), RequestWaitLimit: time.Minute})
	c.Update([]*flowcontrolv1.FlowSchema{fs}, []*flowcontrolv1.PriorityLevelConfiguration{lvl})
	return c
}

func listReq(user string, seats int) *Request {
	r := req(user)
	r.Verb, r.Seats = "list", seats
	return r
}

func TestListTakesItsEstimatedSeats(t *testing.T) {
	// 115 seats, hand size 1: a request may take up to 10 here.
	c := seatController(t, 120, 100, 1)
	if got := c.Limit("lvl"); got != 115 {
		t.Fatalf("lvl has %d seats, want 115", got)
	}
	ctx := context.Background()
	big, _, err := c.Admit(ctx, listReq("a", ListSeats(5000, "")))
	if err != nil {
		t.Fatal(err)
	}
	small, _, err := c.Admit(ctx, listReq("b", ListSeats(150, "")))
	if err != nil {
		t.Fatal(err)
	}
	get, _, err := c.Admit(ctx, req("c"))
	if err != nil {
		t.Fatal(err)
	}
	pl := c.level("lvl")
	if big.Seats() != 10 || small.Seats() != 2 || get.Seats() != 1 || executingIn(pl) != 13 {
		t.Fatalf("seats %d, %d, %d (level: %d), want 10, 2, 1 (13)", big.Seats(), small.Seats(), get.Seats(), executingIn(pl))
	}
	big.Done()
	small.Done()
	get.Done()
	if n := executingIn(pl); n != 0 {
		t.Fatalf("%d seats still in use", n)
	}

	// A small level caps a request's seats, as upstream: here at 15% of
	// its 2 seats, rounded up, so one.
	c = testController(t, 16, 1, 50, time.Minute)
	tk, _, err := c.Admit(ctx, listReq("a", 10))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Seats() != 1 {
		t.Fatalf("a LIST takes %d seats of a 2-seat level, want 1", tk.Seats())
	}
	tk.Done()
}

func TestWideRequestKeepsItsPlaceInTheFlow(t *testing.T) {
	// 11 seats; a request may take 2 (15% of 11, rounded up).
	c := seatController(t, 12, 50, 1)
	if got := c.Limit("lvl"); got != 11 {
		t.Fatalf("lvl has %d seats, want 11", got)
	}
	ctx := context.Background()
	pl := c.level("lvl")
	var held []Ticket
	for range 10 {
		tk, _, err := c.Admit(ctx, req("a"))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tk)
	}
	// One seat is free. The flow asks for a 2-seat LIST, then two GETs:
	// the GETs would fit now but must not overtake the LIST.
	type started struct {
		name string
		tk   Ticket
	}
	order := make(chan started, 3)
	for i, r := range []struct {
		name string
		r    *Request
	}{{"list", listReq("a", 2)}, {"get1", req("a")}, {"get2", req("a")}} {
		go func() {
			tk, _, err := c.Admit(ctx, r.r)
			if err != nil {
				order <- started{name: r.name + " rejected"}
				return
			}
			order <- started{r.name, tk}
		}()
		eventually(t, r.name+" queued", func() bool { return waitingIn(pl) == i+1 })
	}
	held[0].Done() // 2 free: the LIST starts, not a GET
	for i, want := range []string{"list", "get1", "get2"} {
		got := <-order
		if got.name != want {
			t.Fatalf("started %s, want %s", got.name, want)
		}
		held = append(held, got.tk)
		if n := waitingIn(pl); n != 2-i {
			t.Fatalf("%d waiting after %s started, want %d", n, want, 2-i)
		}
		held[i+1].Done()
	}
	for _, tk := range held[4:] {
		tk.Done()
	}
	if n := executingIn(pl); n != 0 {
		t.Fatalf("%d seats still in use", n)
	}
}

// TestWriteHoldsSeatsForItsWatchers checks upstream's mutating work
// estimate: a write whose event reaches ten or more watchers takes a seat
// per ten, capped by the level, and keeps them after it ends for 5 ms, or
// longer in proportion when the cap narrowed them.
func TestWriteHoldsSeatsForItsWatchers(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(1e9, 0))
	// 115 seats, hand size 1: a request may take up to 10 here.
	lvl := apfdefaults.LimitedLevel("lvl", 100, 0, &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 50})
	fs := apfdefaults.FlowSchema("users", "lvl", 500, flowcontrolv1.FlowDistinguisherMethodByUserType, apfdefaults.Everything(apfdefaults.Groups("system:authenticated")))
	c := New(Options{ConcurrencyLimit: 120, RequestWaitLimit: time.Minute, Clock: clk})
	c.Update([]*flowcontrolv1.FlowSchema{fs}, []*flowcontrolv1.PriorityLevelConfiguration{lvl})
	pl := c.level("lvl")
	write := func(watchers int) Ticket {
		t.Helper()
		r := req("a")
		r.Verb, r.Watchers = "create", watchers
		tk, _, err := c.Admit(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}

	for _, tc := range []struct {
		watchers, seats int
		hold            time.Duration
	}{
		{watchers: 0, seats: 1},
		{watchers: 9, seats: 1}, // below ten watchers: nothing more, as upstream
		{watchers: 10, seats: 1, hold: 5 * time.Millisecond},
		{watchers: 45, seats: 5, hold: 5 * time.Millisecond},
		{watchers: 300, seats: 10, hold: 15 * time.Millisecond}, // 30 seats × 5 ms as 10 × 15 ms
	} {
		tk := write(tc.watchers)
		if tk.Seats() != tc.seats || executingIn(pl) != tc.seats {
			t.Fatalf("%d watchers: the write holds %d seats (level: %d), want %d", tc.watchers, tk.Seats(), executingIn(pl), tc.seats)
		}
		tk.Done()
		if tc.hold > 0 {
			if n := executingIn(pl); n != tc.seats {
				t.Fatalf("%d watchers: %d seats in use right after the write, want %d until its events are sent", tc.watchers, n, tc.seats)
			}
			clk.Step(tc.hold - time.Millisecond)
			if n := executingIn(pl); n != tc.seats {
				t.Fatalf("%d watchers: %d seats in use %v after the write, want %d", tc.watchers, n, tc.hold-time.Millisecond, tc.seats)
			}
			clk.Step(time.Millisecond)
		}
		eventually(t, fmt.Sprintf("%d watchers: every seat free after %v", tc.watchers, tc.hold), func() bool { return executingIn(pl) == 0 })
	}
}
