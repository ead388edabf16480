package pleg

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/kubelet/fakeruntime"
)

type recorder struct {
	mu   sync.Mutex
	uids []types.UID
}

func (r *recorder) changed(_ context.Context, uid types.UID) {
	r.mu.Lock()
	r.uids = append(r.uids, uid)
	r.mu.Unlock()
}

func (r *recorder) take() []types.UID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.uids
	r.uids = nil
	slices.Sort(out)
	return out
}

func sandbox(id, uid string, state runtimeapi.PodSandboxState) *runtimeapi.PodSandboxStatus {
	return &runtimeapi.PodSandboxStatus{Id: id, State: state, Labels: map[string]string{podUIDLabel: uid},
		Metadata: &runtimeapi.PodSandboxMetadata{Name: id, Uid: uid}}
}

func container(id, sb, uid string, state runtimeapi.ContainerState) *fakeruntime.Container {
	return &fakeruntime.Container{SandboxID: sb, ContainerStatus: runtimeapi.ContainerStatus{
		Id: id, State: state, Labels: map[string]string{podUIDLabel: uid},
		Metadata: &runtimeapi.ContainerMetadata{Name: id}}}
}

func TestRelistReportsChanges(t *testing.T) {
	rt := fakeruntime.New()
	clk := clocktesting.NewFakeClock(time.Now())
	rec := &recorder{}
	p := New(Config{Runtime: rt, Clock: clk, Changed: rec.changed})
	ctx := context.Background()

	rt.SetSandboxes(sandbox("s1", "a", runtimeapi.PodSandboxState_SANDBOX_READY), sandbox("s2", "b", runtimeapi.PodSandboxState_SANDBOX_READY))
	rt.SetContainers(container("c1", "s1", "a", runtimeapi.ContainerState_CONTAINER_RUNNING))
	if err := p.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); !slices.Equal(got, []types.UID{"a", "b"}) {
		t.Fatalf("first relist reported %v, want a and b", got)
	}
	if err := p.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("unchanged relist reported %v", got)
	}
	// a's container exits; b's sandbox disappears.
	rt.SetSandboxes(sandbox("s1", "a", runtimeapi.PodSandboxState_SANDBOX_READY))
	rt.SetContainers(container("c1", "s1", "a", runtimeapi.ContainerState_CONTAINER_EXITED))
	if err := p.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); !slices.Equal(got, []types.UID{"a", "b"}) {
		t.Fatalf("relist after changes reported %v, want a and b", got)
	}
}

func TestHealthAndFailures(t *testing.T) {
	rt := fakeruntime.New()
	clk := clocktesting.NewFakeClock(time.Now())
	p := New(Config{Runtime: rt, Clock: clk})
	ctx := context.Background()
	if err := p.Healthy(); err != nil {
		t.Fatalf("fresh generator unhealthy: %v", err)
	}
	if err := p.Relist(ctx); err != nil || p.LastError() != nil {
		t.Fatalf("relist: %v / %v", err, p.LastError())
	}
	// The runtime stops answering: failures count, health holds until
	// the threshold passes.
	for range 3 {
		rt.InjectError("ListPodSandbox", errors.New("runtime down"))
		clk.Step(time.Minute)
		if err := p.Relist(ctx); err == nil {
			t.Fatal("relist succeeded against a failing runtime")
		}
	}
	if p.Failures() != 3 || p.LastError() == nil {
		t.Fatalf("failures %d, last error %v", p.Failures(), p.LastError())
	}
	if err := p.Healthy(); err != nil {
		t.Fatalf("unhealthy at exactly the threshold: %v", err)
	}
	clk.Step(time.Second)
	err := p.Healthy()
	if err == nil || !strings.HasPrefix(err.Error(), "pleg was last seen active 3m1s ago; threshold is 3m0s") {
		t.Fatalf("health = %v", err)
	}
	// One success makes it healthy again.
	if err := p.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Healthy(); err != nil || p.LastError() != nil {
		t.Fatalf("after recovery: %v / %v", err, p.LastError())
	}
}

func TestRunRelistsEachPeriod(t *testing.T) {
	rt := fakeruntime.New()
	clk := clocktesting.NewFakeClock(time.Now())
	rec := &recorder{}
	p := New(Config{Runtime: rt, Clock: clk, Period: time.Second, Changed: rec.changed})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()

	// Wait for the first relist (immediate) and the ticker to exist.
	waitFor(t, func() bool { return clk.HasWaiters() && countCalls(rt, "ListContainers") >= 1 })
	rt.SetSandboxes(sandbox("s1", "a", runtimeapi.PodSandboxState_SANDBOX_READY))
	clk.Step(time.Second)
	waitFor(t, func() bool { return countCalls(rt, "ListContainers") >= 2 })
	waitFor(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.uids) == 1
	})
	cancel()
	<-done
}

func countCalls(rt *fakeruntime.Runtime, name string) int { return rt.Count(name) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}
