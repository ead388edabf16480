// Package controllertest runs a controller against client-go informers for
// the length of a test, seeds their caches, and polls for the state it
// should reach.
package controllertest

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/scheme"
)

// Factory is what tests start: a shared informer factory (typed,
// metadata or dynamic).
type Factory interface {
	Start(stopCh <-chan struct{})
	Shutdown()
}

// Run starts the factory's informers and run (a controller's Run) and
// stops both, waiting for run to return, when the test ends.
func Run(t testing.TB, ctx context.Context, factory Factory, run func(context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		factory.Shutdown()
	})
}

// WaitFor polls cond every 10 ms and fails the test when it does not hold
// within 5 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Seed puts objs straight into the caches of factory's informers for their
// kinds, so a test can call a controller's sync without starting them.
func Seed(t testing.TB, factory informers.SharedInformerFactory, objs ...runtime.Object) {
	t.Helper()
	for _, o := range objs {
		gvks, _, err := scheme.Scheme.ObjectKinds(o)
		if err != nil {
			t.Fatalf("seed %T: %v", o, err)
		}
		gvr, _ := meta.UnsafeGuessKindToResource(gvks[0])
		inf, err := factory.ForResource(gvr)
		if err != nil {
			t.Fatalf("seed %T: %v", o, err)
		}
		if err := inf.Informer().GetIndexer().Add(o); err != nil {
			t.Fatal(err)
		}
	}
}
