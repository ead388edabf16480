package kubelet

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// The kubelet's loops and ages run on k.clock; these tests drive them with
// the harness's fake clock.

// wholeSecond sets the fake clock to a whole second, so that times the fake
// API stores compare exactly.
func wholeSecond(h *harness) time.Time {
	t := h.clock.Now().Truncate(time.Second)
	h.clock.SetTime(t)
	return t
}

// countActions counts the fake API's actions of verb on resource
// (and subresource, "" for the object itself).
func countActions(h *harness, verb, resource, subresource string) int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == subresource {
			n++
		}
	}
	return n
}

// runLoop runs loop until the test ends.
func runLoop(t *testing.T, loop func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); loop(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestLeaseRenewedOnTheClock(t *testing.T) {
	h := newHarness(t)
	start := wholeSecond(h)
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), h.k.initialNode(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	renewed := func() time.Time {
		l, err := h.client.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(context.Background(), "n1", metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return time.Time{}
		}
		return l.Spec.RenewTime.Time
	}
	// waiting: the loop has renewed at want and waits on the clock.
	waiting := func(want time.Time) func() bool {
		return func() bool { return renewed().Equal(want) && h.clock.Waiters() == 1 }
	}
	runLoop(t, h.k.runLease)
	waitUntil(t, "lease creation", waiting(start))

	interval := h.k.cfg.LeaseDuration / 4
	h.clock.Step(interval - time.Second)
	if got := renewed(); !got.Equal(start) {
		t.Fatalf("lease renewed at %v, before the %v interval passed", got, interval)
	}
	if n := countActions(h, "update", "leases", ""); n != 0 {
		t.Fatalf("%d lease updates before the interval passed", n)
	}
	h.clock.Step(time.Second)
	waitUntil(t, "renewal after the interval", waiting(start.Add(interval)))

	// A failed renewal is retried a second later, not a whole interval.
	var failures atomic.Int32
	h.client.PrependReactor("update", "leases", func(clienttesting.Action) (bool, runtime.Object, error) {
		if failures.Add(1) == 1 {
			return true, nil, errors.New("apiserver unavailable")
		}
		return false, nil, nil
	})
	h.clock.Step(interval)
	waitUntil(t, "failed renewal", func() bool { return failures.Load() == 1 && h.clock.Waiters() == 1 })
	h.clock.Step(time.Second)
	waitUntil(t, "retry a second later", waiting(start.Add(2*interval+time.Second)))
}

func TestContainerGCWaitsForMinAge(t *testing.T) {
	h := newHarness(t)
	h.k.cfg.MinContainerAge = time.Minute
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	// exitAndRestart stops the running instance, starts the next and
	// returns the stopped one's ID.
	exitAndRestart := func() string {
		id := h.container(pod, "app").Id
		h.rt.Exit(id, 0)
		h.k.backoff.forgetPod(pod.UID)
		h.sync(w)
		return id
	}
	first := exitAndRestart() // created at 0 s
	h.clock.Step(30 * time.Second)
	second := exitAndRestart() // created at 0 s, exited at 30 s
	newest := exitAndRestart() // created at 30 s
	exists := func(id string) bool {
		_, err := h.rt.ContainerStatus(context.Background(), id, false)
		return err == nil
	}
	collect := func() {
		t.Helper()
		if err := h.k.collectContainers(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	// ContainerGCMax (1) makes the two older dead instances evictable, but
	// they are younger than MinContainerAge.
	collect()
	h.clock.Step(29 * time.Second)
	collect()
	if !exists(first) || !exists(second) {
		t.Fatal("dead containers removed before their minimum age")
	}
	h.clock.Step(2 * time.Second)
	collect()
	if exists(first) || exists(second) {
		t.Error("dead containers past their minimum age kept")
	}
	if !exists(newest) {
		t.Error("the newest dead instance removed; ContainerGCMax keeps one")
	}
	if !h.running(pod, "app") {
		t.Error("the running instance is gone")
	}
}

func TestNodeStatusHeartbeatEveryMinute(t *testing.T) {
	h := newHarness(t)
	start := wholeSecond(h)
	ctx := context.Background()
	if _, err := h.client.CoreV1().Nodes().Create(ctx, h.k.initialNode(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.k.updateNodeStatus(ctx, true); err != nil {
		t.Fatal(err)
	}
	heartbeat := func() time.Time {
		n, err := h.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady {
				return c.LastHeartbeatTime.Time
			}
		}
		return time.Time{}
	}
	if got := heartbeat(); !got.Equal(start) {
		t.Fatalf("first heartbeat at %v, want %v", got, start)
	}
	h.client.ClearActions()
	runLoop(t, h.k.runNodeStatus)
	waitUntil(t, "status ticker", func() bool { return h.clock.Waiters() == 1 })

	// Each StatusPeriod the status is checked; unchanged, it is written
	// only once a minute has passed since the last write.
	checks := int(time.Minute / h.k.cfg.StatusPeriod)
	for i := 1; i < checks; i++ {
		h.clock.Step(h.k.cfg.StatusPeriod)
		waitUntil(t, "status check", func() bool { return countActions(h, "get", "nodes", "") == i })
	}
	if n := countActions(h, "update", "nodes", "status"); n != 0 {
		t.Fatalf("%d status writes within the minute of an unchanged status", n)
	}
	h.clock.Step(h.k.cfg.StatusPeriod)
	want := start.Add(time.Minute)
	waitUntil(t, "heartbeat after a minute", func() bool { return heartbeat().Equal(want) })
	if n := countActions(h, "update", "nodes", "status"); n != 1 {
		t.Errorf("%d status writes, want 1", n)
	}
}

func TestLogRotationNamedByClock(t *testing.T) {
	h := newHarness(t)
	h.k.cfg.LogMaxSize, h.k.cfg.LogMaxFiles = 10, 2
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	c := h.container(pod, "app")
	if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
		t.Fatal(err)
	}
	// Three rotations an hour apart keep only the newest rotated file
	// (LogMaxFiles counts the live one), named after the clock.
	for i := range 3 {
		if i > 0 {
			h.clock.Step(time.Hour)
		}
		if err := os.WriteFile(c.LogPath, []byte(strings.Repeat("x", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := h.k.rotateLog(context.Background(), c.Id); err != nil {
			t.Fatal(err)
		}
	}
	want := c.LogPath + "." + h.clock.Now().UTC().Format("20060102-150405.000000")
	if got := rotatedLogs(c.LogPath); len(got) != 1 || got[0] != want {
		t.Errorf("rotated logs %v, want [%s]", got, want)
	}
}

func TestLogsSinceSecondsOnTheClock(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	c := h.container(pod, "app")
	if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
		t.Fatal(err)
	}
	log := "2026-01-01T00:00:00.000000000Z stdout F old\n2026-01-01T00:00:09.000000000Z stdout F new\n"
	if err := os.WriteFile(c.LogPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	h.clock.SetTime(time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC))
	req := httptest.NewRequest(http.MethodGet, "/containerLogs/ns/p/app?sinceSeconds=5", nil)
	for k, v := range map[string]string{"ns": "ns", "pod": "p", "container": "app"} {
		req.SetPathValue(k, v)
	}
	rec := httptest.NewRecorder()
	h.k.serveLogs(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != "new\n" {
		t.Errorf("sinceSeconds=5 at 00:00:10: %d %q, want only the line of 00:00:09", rec.Code, rec.Body.String())
	}
}

// TestNodeStatusKeepsExtendedResources: a resource another party adds to
// the node's capacity (conformance's preemption specs patch in
// example.com/fakecpu) survives the kubelet's status writes and becomes
// allocatable; one it removes leaves allocatable too.
func TestNodeStatusKeepsExtendedResources(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.client.CoreV1().Nodes().Create(ctx, h.k.initialNode(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.k.updateNodeStatus(ctx, true); err != nil {
		t.Fatal(err)
	}
	const fake = v1.ResourceName("example.com/fakecpu")
	setCapacity := func(q *resource.Quantity) {
		n, err := h.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if q == nil {
			delete(n.Status.Capacity, fake)
		} else {
			n.Status.Capacity[fake] = *q
		}
		if _, err := h.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	status := func() v1.NodeStatus {
		n, err := h.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Status
	}

	setCapacity(ptr.To(resource.MustParse("1000")))
	if err := h.k.updateNodeStatus(ctx, false); err != nil {
		t.Fatal(err)
	}
	st := status()
	if c, a := st.Capacity[fake], st.Allocatable[fake]; c.Value() != 1000 || a.Value() != 1000 {
		t.Fatalf("after a status write: capacity %v, allocatable %v of %s; want 1000 and 1000", c.String(), a.String(), fake)
	}
	if st.Capacity.Cpu().IsZero() {
		t.Error("the kubelet's own cpu capacity is gone")
	}

	setCapacity(nil)
	if err := h.k.updateNodeStatus(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := status().Allocatable[fake]; ok {
		t.Errorf("%s still allocatable after it left capacity", fake)
	}
}
