package controllerutil

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"
)

// TestRunSyncedWaitsForCaches: no key is synced before the informers have
// listed, and every queued key is synced after.
func TestRunSyncedWaitsForCaches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := NewQueue("synced")
	var listed atomic.Bool
	synced := []cache.InformerSynced{listed.Load}
	done := make(chan string, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		RunSynced(ctx, synced, q, 1, func(_ context.Context, key string) error {
			if !listed.Load() {
				t.Errorf("synced %s before the caches had listed", key)
			}
			done <- key
			return nil
		}, slog.New(slog.DiscardHandler))
	}()
	q.Add("ns/a")
	select {
	case key := <-done:
		t.Fatalf("synced %s before the caches had listed", key)
	case <-time.After(300 * time.Millisecond):
	}
	listed.Store(true)
	select {
	case key := <-done:
		if key != "ns/a" {
			t.Errorf("synced %q, want ns/a", key)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("key not synced once the caches had listed")
	}
	cancel()
	<-ended
	if !q.ShuttingDown() {
		t.Error("queue not shut down when ctx ended")
	}
}

// TestRunSyncedGivesUpWhenCancelled: a controller stopped before its
// caches list returns and shuts its queue down, so nothing waits on it.
func TestRunSyncedGivesUpWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q := NewQueue("never-synced")
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		RunSynced(ctx, []cache.InformerSynced{func() bool { return false }}, q, 1, func(context.Context, string) error {
			t.Error("sync ran though the caches never listed")
			return nil
		}, slog.New(slog.DiscardHandler))
	}()
	cancel()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("RunSynced did not return after ctx ended")
	}
	if !q.ShuttingDown() {
		t.Error("queue not shut down")
	}
}
