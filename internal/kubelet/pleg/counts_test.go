package pleg

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/kubelet/fakeruntime"
)

// TestCountsAndInterval: a relist counts pods with a ready sandbox and
// containers by state, and observes the time since the previous
// successful relist started; a failed relist keeps the last counts.
func TestCountsAndInterval(t *testing.T) {
	rt := fakeruntime.New()
	clk := clocktesting.NewFakeClock(time.Now())
	interval := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "interval"})
	p := New(Config{Runtime: rt, Clock: clk, RelistInterval: interval})
	ctx := context.Background()

	rt.SetSandboxes(sandbox("s1", "a", runtimeapi.PodSandboxState_SANDBOX_READY),
		sandbox("s2", "b", runtimeapi.PodSandboxState_SANDBOX_NOTREADY))
	rt.SetContainers(container("c1", "s1", "a", runtimeapi.ContainerState_CONTAINER_RUNNING),
		container("c2", "s1", "a", runtimeapi.ContainerState_CONTAINER_EXITED),
		container("c3", "s2", "b", runtimeapi.ContainerState_CONTAINER_EXITED))
	if err := p.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	c := p.Counts()
	if c.ReadyPods != 1 || c.Containers[runtimeapi.ContainerState_CONTAINER_RUNNING] != 1 ||
		c.Containers[runtimeapi.ContainerState_CONTAINER_EXITED] != 2 {
		t.Errorf("counts %+v", c)
	}
	if !p.LastActive().Equal(clk.Now()) {
		t.Errorf("last active %v, want %v", p.LastActive(), clk.Now())
	}

	clk.Step(2 * time.Second)
	rt.InjectError("ListPodSandbox", context.DeadlineExceeded)
	if err := p.Relist(ctx); err == nil {
		t.Fatal("want the injected error")
	}
	if got := p.Counts(); got.ReadyPods != 1 {
		t.Errorf("a failed relist changed the counts: %+v", got)
	}
	clk.Step(time.Second)
	if err := p.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	var m dto.Metric
	if err := interval.Write(&m); err != nil {
		t.Fatal(err)
	}
	// Both later relists are measured from the first one's start.
	if m.Histogram.GetSampleCount() != 2 || m.Histogram.GetSampleSum() != 5 {
		t.Errorf("intervals: %d samples summing %v s, want 2 summing 5 s", m.Histogram.GetSampleCount(), m.Histogram.GetSampleSum())
	}
}
