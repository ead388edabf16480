package storage

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a fake etcd call that blocks until released and counts calls.
type gate struct {
	calls   atomic.Int64
	entered chan int64 // receives the call's number when it starts
	release chan struct{}
}

func newGate() *gate {
	return &gate{entered: make(chan int64, 100), release: make(chan struct{})}
}

func (g *gate) call(ctx context.Context) (int64, error) {
	n := g.calls.Add(1)
	g.entered <- n
	select {
	case <-g.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return 100 * n, nil
}

// waitFor polls cond, for state the code under test reaches on its own
// goroutines and does not signal.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRevReaderSharesReads: callers arriving while a read is in flight
// share the next read, never the one in flight, which may predate them.
func TestRevReaderSharesReads(t *testing.T) {
	g := newGate()
	r := &revReader{read: g.call}
	first := make(chan int64, 1)
	go func() { rev, _ := r.get(context.Background()); first <- rev }()
	<-g.entered

	const late = 50
	var wg sync.WaitGroup
	revs := make([]int64, late)
	for i := range late {
		wg.Add(1)
		go func() {
			defer wg.Done()
			revs[i], _ = r.get(context.Background())
		}()
	}
	waitFor(t, "late callers to join the next round", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.next != nil && r.next.shared == late
	})
	close(g.release)
	if rev := <-first; rev != 100 {
		t.Fatalf("first caller got %d, want the first read's 100", rev)
	}
	wg.Wait()
	for i, rev := range revs {
		if rev < 200 {
			t.Fatalf("late caller %d got %d, from a read that began before it asked", i, rev)
		}
	}
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d reads for %d callers, want 2", n, late+1)
	}
}

// TestRevReaderCallerLeaves: a caller whose context ends returns at once;
// the read goes on for the others.
func TestRevReaderCallerLeaves(t *testing.T) {
	g := newGate()
	r := &revReader{read: g.call}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := r.get(ctx); errc <- err }()
	<-g.entered
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("get after cancel: %v", err)
	}
	close(g.release)
	if rev, err := r.get(context.Background()); err != nil || rev != 200 {
		t.Fatalf("next get = %d, %v; want a fresh read 200", rev, err)
	}
}

// TestProgressRequesterCoalesces: any number of requests made while one
// is being sent cause exactly one more send.
func TestProgressRequesterCoalesces(t *testing.T) {
	g := newGate()
	p := &progressRequester{send: func(ctx context.Context) error { _, err := g.call(ctx); return err }}
	p.request()
	<-g.entered
	for range 100 {
		p.request()
	}
	g.release <- struct{}{}
	<-g.entered // the one follow-up send
	g.release <- struct{}{}
	waitFor(t, "the requester to go idle", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.running
	})
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("%d sends, want 2", n)
	}
}

// TestWaitFreshSharedWithEtcd: many concurrent consistent reads, while the
// revision moves through writes to another prefix, all return, and the
// cache reached the revision each one needed.
func TestWaitFreshSharedWithEtcd(t *testing.T) {
	s := startStore(t)
	c := startCache(t, s, 100)
	var reads atomic.Int64
	c.revs.read = func(ctx context.Context) (int64, error) {
		reads.Add(1)
		return s.CurrentRevision(ctx)
	}
	for i := range 5 {
		mustCreate(t, s, "/registry/otherthings/"+string(rune('a'+i)), "x")
	}
	want, err := s.CurrentRevision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const waiters = 40
	var wg sync.WaitGroup
	errs := make(chan error, waiters)
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.WaitFresh(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if rev := c.Rev(); rev < want {
		t.Fatalf("cache at %d after WaitFresh, want >= %d", rev, want)
	}
	if n := reads.Load(); n >= waiters {
		t.Fatalf("%d revision reads for %d concurrent waiters, want them shared", n, waiters)
	}
}
