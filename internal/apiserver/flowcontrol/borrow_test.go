package flowcontrol

import (
	"context"
	"math"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"
)

// borrowController serves 25 seats: "borrower" (10 nominal, lends all,
// may borrow 50% more) for group "borrowers", "lender" (10 nominal,
// lendable as given) for group "lenders", and a catch-all pinned at 5
// (lends and borrows nothing) so that only the two trade seats.
func borrowController(t *testing.T, lenderLendable int32) (*Controller, *clocktesting.FakeClock) {
	t.Helper()
	q := &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 100}
	borrower := apfdefaults.LimitedLevel("borrower", 10, 100, q)
	borrower.Spec.Limited.BorrowingLimitPercent = ptr.To[int32](50)
	lender := apfdefaults.LimitedLevel("lender", 10, lenderLendable, q)
	catchAll := apfdefaults.LimitedLevel(apfdefaults.CatchAll, 5, 0, nil)
	catchAll.Spec.Limited.BorrowingLimitPercent = ptr.To[int32](0)
	fss := []*flowcontrolv1.FlowSchema{
		apfdefaults.FlowSchema("borrowers", "borrower", 500, flowcontrolv1.FlowDistinguisherMethodByUserType, apfdefaults.Everything(apfdefaults.Groups("borrowers"))),
		apfdefaults.FlowSchema("lenders", "lender", 500, flowcontrolv1.FlowDistinguisherMethodByUserType, apfdefaults.Everything(apfdefaults.Groups("lenders"))),
	}
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := New(Options{ConcurrencyLimit: 25, RequestWaitLimit: time.Hour, Clock: clk})
	c.Update(fss, []*flowcontrolv1.PriorityLevelConfiguration{borrower, lender, catchAll})
	for name, want := range map[string]int{"borrower": 10, "lender": 10, apfdefaults.CatchAll: 5} {
		if got := c.NominalLimit(name); got != want {
			t.Fatalf("%s: nominal %d, want %d", name, got, want)
		}
	}
	return c, clk
}

func groupReq(user, group string) *Request {
	return &Request{User: user, Groups: []string{group}, ResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "default"}
}

// flood admits n requests of the group in the background and returns the
// channel their tickets arrive on.
func flood(t *testing.T, c *Controller, group string, n int) <-chan Ticket {
	t.Helper()
	out := make(chan Ticket, n)
	for i := range n {
		go func() {
			tk, _, err := c.Admit(context.Background(), groupReq(group+"-"+string(rune('a'+i%26)), group))
			if err != nil {
				t.Errorf("%s request rejected: %v", group, err)
				return
			}
			out <- tk
		}()
	}
	return out
}

func executingIn(pl *priorityLevel) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.executing
}

func limits(c *Controller) (borrower, lender, catchAll int) {
	return c.Limit("borrower"), c.Limit("lender"), c.Limit(apfdefaults.CatchAll)
}

func TestBusyLevelBorrowsUpToItsLimitAndGivesSeatsBack(t *testing.T) {
	c, clk := borrowController(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Idle, the two lenders of everything split the free seats evenly.
	if b, l, ca := limits(c); b != 10 || l != 10 || ca != 5 {
		t.Fatalf("idle limits %d/%d/%d, want 10/10/5", b, l, ca)
	}

	// The borrower wants 30 seats for a period: it runs 10, queues 20.
	bpl, lpl := c.level("borrower"), c.level("lender")
	btickets := flood(t, c, "borrowers", 30)
	eventually(t, "borrower queued", func() bool { return waitingIn(bpl) == 20 && executingIn(bpl) == 10 })
	eventually(t, "borrowing ticker started", clk.HasWaiters)
	clk.Step(BorrowingPeriod)
	// It borrows the idle lender's seats, but only 50% of its nominal 10:
	// the lender keeps the 5 it could have lent too.
	eventually(t, "borrowing", func() bool { return c.Limit("borrower") == 15 })
	if b, l, ca := limits(c); b+l+ca != 25 || l != 5 || ca != 5 {
		t.Fatalf("limits %d/%d/%d, want 15/5/5", b, l, ca)
	}
	if n := executingIn(bpl); n != 15 {
		t.Fatalf("borrower runs %d seats with a limit of 15", n)
	}
	// Later periods are adjusted by hand, in step with the test.
	cancel()
	<-done
	clk.Step(BorrowingPeriod)
	c.AdjustLimits()
	if b := c.Limit("borrower"); b != 15 {
		t.Fatalf("borrower at %d seats with demand 30, want its cap of 15", b)
	}

	// The lender's demand returns: 5 run at once, 5 queue; at the next
	// adjustment it takes its 10 seats back.
	ltickets := flood(t, c, "lenders", 10)
	eventually(t, "lender queued", func() bool { return waitingIn(lpl) == 5 && executingIn(lpl) == 5 })
	clk.Step(BorrowingPeriod)
	c.AdjustLimits()
	if b, l, ca := limits(c); b != 10 || l != 10 || ca != 5 {
		t.Fatalf("limits %d/%d/%d after the lender's demand returned, want 10/10/5", b, l, ca)
	}
	eventually(t, "lender runs its 10 seats", func() bool { return executingIn(lpl) == 10 && waitingIn(lpl) == 0 })

	// The borrower holds 15 seats on a limit of 10: freeing 5 starts none
	// of its queued requests; the sixth does.
	var held []Ticket
	for range 15 {
		held = append(held, <-btickets)
	}
	for _, tk := range held[:5] {
		tk.Done()
	}
	if n, w := executingIn(bpl), waitingIn(bpl); n != 10 || w != 15 {
		t.Fatalf("borrower runs %d, queues %d; want 10 and 15 (no seat over its limit)", n, w)
	}
	held[5].Done()
	eventually(t, "a queued borrower request starts", func() bool { return waitingIn(bpl) == 14 })
	if n := executingIn(bpl); n != 10 {
		t.Fatalf("borrower runs %d seats, want 10", n)
	}

	// Drain everything so that no goroutine is left waiting.
	for _, tk := range held[6:] {
		tk.Done()
	}
	for range 15 {
		(<-btickets).Done()
	}
	for range 10 {
		(<-ltickets).Done()
	}
}

func TestZeroLendablePercentLendsNothing(t *testing.T) {
	c, clk := borrowController(t, 0)
	bpl := c.level("borrower")
	btickets := flood(t, c, "borrowers", 30)
	// The idle borrower lends everything to the lender, so it starts with
	// none: one request runs alone, the rest queue.
	eventually(t, "borrower queued", func() bool { return waitingIn(bpl)+executingIn(bpl) == 30 })
	clk.Step(BorrowingPeriod)
	c.AdjustLimits()
	if b, l, ca := limits(c); b != 10 || l != 10 || ca != 5 {
		t.Fatalf("limits %d/%d/%d, want 10/10/5: an idle lender with lendablePercent 0 keeps its seats", b, l, ca)
	}
	eventually(t, "borrower runs its nominal seats", func() bool { return executingIn(bpl) == 10 })
	clk.Step(BorrowingPeriod)
	c.AdjustLimits()
	if b := c.Limit("borrower"); b != 10 {
		t.Fatalf("borrower at %d seats, want 10", b)
	}
	for range 30 {
		(<-btickets).Done()
	}
}

func TestComputeAllocation(t *testing.T) {
	tests := []struct {
		name  string
		total int
		items []allocItem
		want  []int
	}{
		{"proportional to targets", 30, []allocItem{{0, 30, 10}, {0, 30, 20}}, []int{10, 20}},
		{"upper bound caps, the rest goes on", 30, []allocItem{{0, 5, 10}, {0, 30, 10}}, []int{5, 25}},
		{"lower bound holds", 10, []allocItem{{6, 30, 1}, {0, 30, 100}}, []int{6, 4}},
		{"zero targets share evenly", 20, []allocItem{{0, 30, 0}, {0, 30, 0}}, []int{10, 10}},
		{"rounding keeps the sum", 10, []allocItem{{0, 10, 1}, {0, 10, 1}, {0, 10, 1}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := computeAllocation(tc.total, tc.items)
			if !ok {
				t.Fatal("no allocation")
			}
			sum := 0
			for i, g := range got {
				sum += g
				if float64(g) < tc.items[i].lower || float64(g) > tc.items[i].upper {
					t.Fatalf("allocation %v breaks the bounds of item %d", got, i)
				}
				if tc.want != nil && g != tc.want[i] {
					t.Fatalf("allocation %v, want %v", got, tc.want)
				}
			}
			if sum != tc.total {
				t.Fatalf("allocation %v sums to %d, want %d", got, sum, tc.total)
			}
		})
	}
	if _, ok := computeAllocation(10, []allocItem{{6, 10, 1}, {6, 10, 1}}); ok {
		t.Fatal("lower bounds above the total must fail")
	}
	if _, ok := computeAllocation(10, []allocItem{{0, 4, 1}, {0, 4, 1}}); ok {
		t.Fatal("upper bounds below the total must fail")
	}
}

func TestDemandStats(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var d demandIntegrator
	d.start(now)
	d.set(now, 4)
	d.set(now.Add(5*time.Second), 0)
	obs := d.reset(now.Add(10 * time.Second))
	if obs.max != 4 || math.Abs(obs.avg-2) > 1e-9 || math.Abs(obs.stdDev-2) > 1e-9 || obs.duration != 10 {
		t.Fatalf("window %+v, want max 4, avg 2, stdDev 2 over 10 s", obs)
	}
	var s demandStats
	s.update(obs)
	if s.highWater != 4 || s.smoothed != 4 {
		t.Fatalf("stats %+v, want high water 4, smoothed 4", s)
	}
	// An idle period: the high-water mark drops at once, the smoothed
	// demand decays slowly.
	s.update(d.reset(now.Add(20 * time.Second)))
	if s.highWater != 0 || math.Abs(s.smoothed-4*demandSmoothing) > 1e-9 {
		t.Fatalf("stats %+v after an idle period", s)
	}
}
