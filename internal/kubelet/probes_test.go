package kubelet

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// A readiness probe waits its initialDelaySeconds from the container's
// creation and then runs every periodSeconds, all on the kubelet's clock.
func TestProbeDelayAndPeriodOnTheClock(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(created)
	var probes, wakes atomic.Int32
	m := newProbeManager(func(context.Context, *v1.Pod, *v1.Container, string, *v1.Probe) error {
		probes.Add(1)
		return nil
	}, func() record.EventRecorder { return record.NewFakeRecorder(10) }, func(types.UID) { wakes.Add(1) }, clk)
	t.Cleanup(m.stopAll)
	readinessProbed(t, m, created, 10)
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	waitSleeping(t, clk)
	clk.Step(9 * time.Second)
	waitSleeping(t, clk)
	if n := probes.Load(); n != 0 {
		t.Fatalf("%d probes 9s after creation, want none before the 10s initial delay", n)
	}
	clk.Step(time.Second)
	eventually("the first probe at 10s", func() bool { return probes.Load() == 1 })
	eventually("the container ready", func() bool { r, _ := m.result("c1"); return r.ready })
	if wakes.Load() == 0 {
		t.Error("the pod's worker was not woken when the container became ready")
	}
	waitSleeping(t, clk)
	clk.Step(4 * time.Second)
	waitSleeping(t, clk)
	if n := probes.Load(); n != 1 {
		t.Fatalf("%d probes 4s into a 5s period, want 1", n)
	}
	clk.Step(time.Second)
	eventually("the second probe one period later", func() bool { return probes.Load() == 2 })
}

// The initial delay counts from the container's start, not its creation:
// the conformance spec compares the Ready transition with StartedAt.
func TestProbeDelayCountsFromStart(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(created.Add(3 * time.Second))
	var probes atomic.Int32
	m := newProbeManager(func(context.Context, *v1.Pod, *v1.Container, string, *v1.Probe) error {
		probes.Add(1)
		return nil
	}, func() record.EventRecorder { return record.NewFakeRecorder(10) }, func(types.UID) {}, clk)
	m.startedAt = func(context.Context, string) (time.Time, bool) { return created.Add(3 * time.Second), true }
	t.Cleanup(m.stopAll)
	readinessProbed(t, m, created, 10)
	waitSleeping(t, clk)
	clk.Step(9 * time.Second) // 12 s after creation, 9 s after start
	waitSleeping(t, clk)
	if n := probes.Load(); n != 0 {
		t.Fatalf("%d probes 9 s after the start, want none before the 10 s initial delay", n)
	}
	clk.Step(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for probes.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no probe 10 s after the start")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitSleeping waits until a probe worker sleeps on the fake clock.
func waitSleeping(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the probe worker never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

// readinessProbed starts probing one container created at created, with a
// readiness probe of the given initial delay and a 5 s period.
func readinessProbed(t *testing.T, m *probeManager, created time.Time, delay int32) {
	t.Helper()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "p1"}, Spec: v1.PodSpec{Containers: []v1.Container{{
		Name:           "app",
		ReadinessProbe: &v1.Probe{InitialDelaySeconds: delay, PeriodSeconds: 5},
	}}}}
	m.sync(pod, &podRuntime{containers: []*runtimeapi.Container{{
		Id: "c1", Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: created.UnixNano(),
	}}})
}
