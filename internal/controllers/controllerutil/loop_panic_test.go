package controllerutil

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/internal/crash"
)

// TestPanickingSyncIsRecovered: a sync that panics does not end the
// process; the panic is counted and the key retried until it succeeds.
func TestPanickingSyncIsRecovered(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := NewQueue("panics")
	before := crash.Count("controller")
	var calls atomic.Int32
	done := make(chan struct{})
	go RunWorkers(ctx, q, 1, func(_ context.Context, key string) error {
		if calls.Add(1) <= 2 {
			panic("reconcile bug on " + key)
		}
		close(done)
		return nil
	}, slog.New(slog.DiscardHandler))
	q.Add("ns/name")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("key not retried after panics (%d calls)", calls.Load())
	}
	if got := crash.Count("controller") - before; got != 2 {
		t.Errorf("skiff_panics_total{component=controller} grew by %v, want 2", got)
	}
}
