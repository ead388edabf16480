package garbagecollector

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// countingDiscovery serves no resources and counts how often it is asked.
type countingDiscovery struct {
	*fakediscovery.FakeDiscovery
	calls atomic.Int32
}

func (d *countingDiscovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	d.calls.Add(1)
	return nil, nil
}

// New resources are looked for every discoveryResync on the collector's
// clock.
func TestDiscoveryResyncTicksOnClock(t *testing.T) {
	disc := &countingDiscovery{FakeDiscovery: &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}}
	c := New(nil, disc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.Clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("resync ticker", clk.HasWaiters)
	if n := disc.calls.Load(); n != 1 {
		t.Fatalf("%d discovery calls at start, want 1", n)
	}
	clk.Step(discoveryResync - time.Second)
	time.Sleep(100 * time.Millisecond) // room for a wrongly early resync
	if n := disc.calls.Load(); n != 1 {
		t.Fatalf("%d discovery calls before the resync period, want 1", n)
	}
	clk.Step(time.Second)
	waitFor("second discovery", func() bool { return disc.calls.Load() == 2 })
}
