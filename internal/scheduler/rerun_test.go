package scheduler

import (
	"context"
	"testing"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// A scheduler that stops (its leader lease lost) and runs again (won back)
// schedules as before: a second Run gets fresh informers, cache and queue
// instead of stopped ones.
func TestRunAgainAfterStop(t *testing.T) {
	ts := testserver.Start(t)
	s := New(Config{Client: ts.Client})
	t.Cleanup(s.Close)
	e := &env{t: t, client: ts.Client, ctx: context.Background()}
	e.node("n1", "4", nil)

	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = s.Run(ctx); close(done) }()
		return func() { cancel(); <-done }
	}
	stop := run()
	e.pod(pod("first", "100m", "64Mi"))
	if got := e.placement("first"); got != "n1" {
		t.Fatalf("first run placed the pod on %q", got)
	}
	stop()

	stop = run()
	defer stop()
	e.node("n2", "4", nil)
	e.pod(pod("second", "100m", "64Mi"))
	if got := e.placement("second"); got == "" {
		t.Fatal("second run placed nothing")
	}
}
