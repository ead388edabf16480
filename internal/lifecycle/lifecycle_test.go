package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder keeps the order of events from several goroutines.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// component starts, runs until its ctx ends, and stops, recording each.
func component(r *recorder, name string) Component {
	return Component{
		Name:  name,
		Start: func(context.Context) error { r.add("start " + name); return nil },
		Run: func(ctx context.Context) error {
			<-ctx.Done()
			r.add("run-end " + name)
			return ctx.Err()
		},
		Stop: func() { r.add("stop " + name) },
	}
}

func newGroup(cs ...Component) *Group {
	g := &Group{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g.Add(cs...)
	return g
}

// runAsync runs g in the background; the channel yields its error.
func runAsync(ctx context.Context, g *Group) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- g.Run(ctx) }()
	return ch
}

func wait(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("group did not return")
		return nil
	}
}

// noLeaks fails the test if goroutines started since before remain once
// the test is over. Goroutines take a moment to exit after signalling, so
// it polls until the count settles instead of sleeping a fixed time.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
	})
}

func TestStartInOrderStopInReverse(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	g := newGroup(component(r, "a"), component(r, "b"), component(r, "c"), cancelOnStart(cancel))
	if err := wait(t, runAsync(ctx, g)); err != nil {
		t.Fatalf("Run = %v, want nil after ctx ended", err)
	}
	want := []string{"start a", "start b", "start c",
		"run-end c", "stop c", "run-end b", "stop b", "run-end a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
}

// cancelOnStart is a last component that ends the group's ctx once all
// before it have started.
func cancelOnStart(cancel context.CancelFunc) Component {
	return Component{Name: "end", Start: func(context.Context) error { cancel(); return nil }}
}

// signalOnStart is a last component that closes ch once all before it
// have started.
func signalOnStart(ch chan struct{}) Component {
	return Component{Name: "signal", Start: func(context.Context) error { close(ch); return nil }}
}

// TestEarlierRunsUntilLaterStopped: each component's ctx ends only once
// every later one has stopped, so a later one can still use an earlier one
// while stopping (the kubelet stops pods through containerd).
func TestEarlierRunsUntilLaterStopped(t *testing.T) {
	noLeaks(t)
	var runtimeCtx context.Context
	stillUp := false
	ctx, cancel := context.WithCancel(context.Background())
	g := newGroup(
		Component{Name: "runtime", Start: func(ctx context.Context) error { runtimeCtx = ctx; return nil }},
		Component{Name: "kubelet", Stop: func() { stillUp = runtimeCtx.Err() == nil }},
		cancelOnStart(cancel),
	)
	if err := wait(t, runAsync(ctx, g)); err != nil {
		t.Fatal(err)
	}
	if !stillUp {
		t.Error("runtime's ctx ended before kubelet was stopped")
	}
	if runtimeCtx.Err() == nil {
		t.Error("runtime's ctx still live after Run returned")
	}
}

func TestEndedCtxStartsNothing(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newGroup(component(r, "a")).Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got := r.get(); len(got) != 0 {
		t.Errorf("events %q, want none", got)
	}
}

func TestFailingStartUnwinds(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	boom := errors.New("boom")
	g := newGroup(component(r, "a"), component(r, "b"),
		Component{Name: "bad", Start: func(context.Context) error { return boom }, Stop: func() { r.add("stop bad") }},
		component(r, "never"))
	err := wait(t, runAsync(context.Background(), g))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad: boom") {
		t.Fatalf("Run = %v, want bad: boom", err)
	}
	want := []string{"start a", "start b", "run-end b", "stop b", "run-end a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
}

func TestPanicInRunStopsGroup(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	allUp := make(chan struct{})
	g := newGroup(component(r, "a"),
		Component{Name: "crashy", Run: func(context.Context) error { <-allUp; panic("nil map") }, Stop: func() { r.add("stop crashy") }},
		component(r, "c"), signalOnStart(allUp))
	// The parent ctx never ends: only the panic can stop the group.
	err := wait(t, runAsync(context.Background(), g))
	if err == nil || !strings.Contains(err.Error(), "crashy: panic: nil map") {
		t.Fatalf("Run = %v, want an error naming crashy's panic", err)
	}
	want := []string{"start a", "start c", "run-end c", "stop c", "stop crashy", "run-end a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
}

func TestPanicInStartAndStop(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	g := newGroup(component(r, "a"),
		Component{Name: "badstart", Start: func(context.Context) error { panic("start bug") }})
	err := wait(t, runAsync(context.Background(), g))
	if err == nil || !strings.Contains(err.Error(), "badstart: panic: start bug") {
		t.Fatalf("Run = %v, want badstart's panic", err)
	}
	if got := r.get(); !slices.Contains(got, "stop a") {
		t.Errorf("a not stopped after a panicking start: %q", got)
	}

	// A panicking Stop is reported, and the earlier components still stop.
	r = &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	g = newGroup(component(r, "a"), Component{Name: "badstop", Stop: func() { panic("stop bug") }}, cancelOnStart(cancel))
	err = wait(t, runAsync(ctx, g))
	if err == nil || !strings.Contains(err.Error(), "badstop: panic: stop bug") {
		t.Fatalf("Run = %v, want badstop's panic", err)
	}
	if got := r.get(); !slices.Contains(got, "stop a") {
		t.Errorf("a not stopped after a panicking Stop: %q", got)
	}
}

func TestRunErrorStopsGroup(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	boom := errors.New("lost connection")
	allUp := make(chan struct{})
	g := newGroup(component(r, "a"),
		Component{Name: "proxy", Run: func(context.Context) error { <-allUp; return boom }},
		component(r, "c"), signalOnStart(allUp))
	err := wait(t, runAsync(context.Background(), g))
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "proxy: ") {
		t.Fatalf("Run = %v, want proxy: lost connection", err)
	}
	if got := r.get(); !slices.Contains(got, "stop a") || !slices.Contains(got, "stop c") {
		t.Errorf("not everything stopped: %q", got)
	}
}

// TestRunReturningNilEarly: a component whose Run ends without error is
// done; the others keep running until ctx ends, and it is still stopped
// in its turn.
func TestRunReturningNilEarly(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	finished, allUp := make(chan struct{}), make(chan struct{})
	g := newGroup(component(r, "a"),
		Component{Name: "oneshot", Run: func(context.Context) error { close(finished); return nil }, Stop: func() { r.add("stop oneshot") }},
		component(r, "c"), signalOnStart(allUp))
	ctx, cancel := context.WithCancel(context.Background())
	ch := runAsync(ctx, g)
	<-finished
	<-allUp
	select {
	case err := <-ch:
		t.Fatalf("group returned %v after one Run returned nil", err)
	case <-time.After(50 * time.Millisecond):
	}
	if got := r.get(); slices.Contains(got, "run-end a") || slices.Contains(got, "run-end c") {
		t.Fatalf("others stopped after one Run returned nil: %q", got)
	}
	cancel()
	if err := wait(t, ch); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start c", "run-end c", "stop c", "stop oneshot", "run-end a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
}

// TestCancelInterruptsSlowStart: ctx ending while a Start blocks ends that
// Start's ctx, and nothing after it starts.
func TestCancelInterruptsSlowStart(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	g := newGroup(component(r, "a"),
		Component{Name: "slow", Start: func(sctx context.Context) error {
			cancel()
			<-sctx.Done()
			return sctx.Err()
		}},
		component(r, "never"))
	err := wait(t, runAsync(ctx, g))
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "slow: ") {
		t.Fatalf("Run = %v, want slow: context canceled", err)
	}
	want := []string{"start a", "run-end a", "stop a"}
	if got := r.get(); !slices.Equal(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
}

// TestRunErrorDuringShutdownReported: an error a Run returns while
// stopping (not its ctx's own) is the group's error.
func TestRunErrorDuringShutdownReported(t *testing.T) {
	noLeaks(t)
	bad := errors.New("pods not stopped")
	ctx, cancel := context.WithCancel(context.Background())
	g := newGroup(Component{Name: "kubelet", Run: func(ctx context.Context) error { <-ctx.Done(); return bad }},
		cancelOnStart(cancel))
	err := wait(t, runAsync(ctx, g))
	if !errors.Is(err, bad) || !strings.HasPrefix(err.Error(), "kubelet: ") {
		t.Fatalf("Run = %v, want kubelet: pods not stopped", err)
	}
}

// TestRunFailureInterruptsSlowStart: a Run failing while a later component
// is still starting ends that Start's ctx too.
func TestRunFailureInterruptsSlowStart(t *testing.T) {
	noLeaks(t)
	r := &recorder{}
	boom := errors.New("boom")
	fail := make(chan struct{})
	g := newGroup(
		Component{Name: "early", Run: func(context.Context) error { <-fail; return boom }},
		Component{Name: "slow", Start: func(ctx context.Context) error {
			close(fail)
			<-ctx.Done()
			return nil // gave up quietly: counts as started, so it is stopped
		}, Stop: func() { r.add("stop slow") }},
		component(r, "never"))
	err := wait(t, runAsync(context.Background(), g))
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "early: ") {
		t.Fatalf("Run = %v, want early: boom", err)
	}
	if got := r.get(); !slices.Equal(got, []string{"stop slow"}) {
		t.Errorf("events %q, want only slow stopped", got)
	}
}
