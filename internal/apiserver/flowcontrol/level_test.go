package flowcontrol

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"
)

// testController has one limited level "lvl" with two seats (a server limit
// of 12 split by shares 1 : catch-all's 5) serving every authenticated user,
// a flow per user.
func testController(t *testing.T, queues, hand, length int32, wait time.Duration) *Controller {
	t.Helper()
	lvl := apfdefaults.LimitedLevel("lvl", 1, 0, &flowcontrolv1.QueuingConfiguration{Queues: queues, HandSize: hand, QueueLengthLimit: length})
	if queues == 0 {
		lvl = apfdefaults.LimitedLevel("lvl", 1, 0, nil)
	}
	fs := apfdefaults.FlowSchema("users", "lvl", 500, flowcontrolv1.FlowDistinguisherMethodByUserType, apfdefaults.Everything(apfdefaults.Groups("system:authenticated")))
	c := New(Options{ConcurrencyLimit: 12, RequestWaitLimit: wait})
	c.Update([]*flowcontrolv1.FlowSchema{fs}, []*flowcontrolv1.PriorityLevelConfiguration{lvl})
	if got := c.Limit("lvl"); got != 2 {
		t.Fatalf("lvl has %d seats, want 2", got)
	}
	return c
}

func req(user string) *Request {
	return &Request{User: user, Groups: []string{"system:authenticated"}, ResourceRequest: true, Verb: "get", Resource: "pods", Namespace: "default"}
}

func (c *Controller) level(name string) *priorityLevel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.levels[name]
}

func waitingIn(pl *priorityLevel) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.waiting
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// userInOtherQueue returns a user whose single-card hand differs from
// heavy's, so the test does not depend on a hash collision.
func userInOtherQueue(t *testing.T, heavy string, queues uint64) string {
	for i := 0; i < 100; i++ {
		u := fmt.Sprintf("light-%d", i)
		if flowHash("users", u)%queues != flowHash("users", heavy)%queues {
			return u
		}
	}
	t.Fatal("no user in another queue")
	return ""
}

func TestHeavyFlowCannotStarveLightFlow(t *testing.T) {
	c := testController(t, 16, 1, 50, time.Minute)
	ctx := context.Background()
	light := userInOtherQueue(t, "heavy", 16)

	// The heavy flow holds both seats and queues 20 more requests.
	var held []Ticket
	for range 2 {
		tk, _, err := c.Admit(ctx, req("heavy"))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tk)
	}
	order := make(chan string, 32)
	for range 20 {
		go func() {
			tk, _, err := c.Admit(ctx, req("heavy"))
			if err != nil {
				order <- "heavy rejected"
				return
			}
			order <- "heavy"
			time.Sleep(5 * time.Millisecond)
			tk.Done()
		}()
	}
	pl := c.level("lvl")
	eventually(t, "heavy requests queued", func() bool { return waitingIn(pl) == 20 })
	go func() {
		tk, _, err := c.Admit(ctx, req(light))
		if err != nil {
			order <- "light rejected"
			return
		}
		order <- "light"
		tk.Done()
	}()
	eventually(t, "light request queued", func() bool { return waitingIn(pl) == 21 })

	// The first freed seat goes to the light flow, though the heavy one
	// queued first and has twenty waiting.
	held[0].Done()
	if got := <-order; got != "light" {
		t.Fatalf("first dispatched: %s, want light", got)
	}
	held[1].Done()
	for range 20 {
		if got := <-order; got != "heavy" {
			t.Fatalf("got %s, want every heavy request served", got)
		}
	}
}

func TestFullQueueRejects(t *testing.T) {
	c := testController(t, 1, 1, 3, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		if _, _, err := c.Admit(ctx, req("a")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		go func() { _, _, _ = c.Admit(ctx, req("a")) }()
	}
	pl := c.level("lvl")
	eventually(t, "queue filled", func() bool { return waitingIn(pl) == 3 })
	_, cl, err := c.Admit(ctx, req("b"))
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Reason != reasonQueueFull || rej.RetryAfter < 1 {
		t.Fatalf("err = %v, want a queue-full rejection with a Retry-After", err)
	}
	if cl.PriorityLevel != "lvl" {
		t.Fatalf("rejected request classified as %s", cl.PriorityLevel)
	}
}

func TestQueuedRequestTimesOut(t *testing.T) {
	c := testController(t, 4, 2, 10, 50*time.Millisecond)
	ctx := context.Background()
	for range 2 {
		if _, _, err := c.Admit(ctx, req("a")); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	_, _, err := c.Admit(ctx, req("a"))
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Reason != reasonTimeout {
		t.Fatalf("err = %v, want a time-out rejection", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("rejected after %v, before the wait limit", d)
	}
	if n := waitingIn(c.level("lvl")); n != 0 {
		t.Fatalf("%d requests still queued after the time-out", n)
	}
}

func TestRejectLevelRefusesBeyondItsSeats(t *testing.T) {
	c := testController(t, 0, 0, 0, time.Minute)
	ctx := context.Background()
	t1, _, err1 := c.Admit(ctx, req("a"))
	_, _, err2 := c.Admit(ctx, req("b"))
	_, _, err3 := c.Admit(ctx, req("c"))
	if err1 != nil || err2 != nil {
		t.Fatalf("first two: %v, %v", err1, err2)
	}
	var rej *Rejection
	if !errors.As(err3, &rej) || rej.Reason != reasonConcurrencyLimit {
		t.Fatalf("third: %v, want a concurrency-limit rejection", err3)
	}
	t1.Done()
	if _, _, err := c.Admit(ctx, req("c")); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}

func TestExemptIsNeverLimited(t *testing.T) {
	c := New(Options{ConcurrencyLimit: 1})
	admin := &Request{User: "admin", Groups: []string{"system:masters"}, ResourceRequest: true, Verb: "get", Resource: "pods"}
	for range 100 {
		if _, _, err := c.Admit(context.Background(), admin); err != nil {
			t.Fatal(err)
		}
	}
}

func TestShuffleShardingDealsDistinctCards(t *testing.T) {
	seen := map[int]bool{}
	for h := uint64(0); h < 2000; h++ {
		hash := flowHash("fs", fmt.Sprint(h))
		hand := map[int]bool{}
		deal(hash, 10, 4, func(card int) {
			if card < 0 || card >= 10 || hand[card] {
				t.Fatalf("hash %d: card %d dealt out of range or twice (hand %v)", hash, card, hand)
			}
			hand[card] = true
			seen[card] = true
		})
		if len(hand) != 4 {
			t.Fatalf("hand of %d cards, want 4", len(hand))
		}
	}
	if len(seen) != 10 {
		t.Fatalf("only cards %v ever dealt", seen)
	}
}
