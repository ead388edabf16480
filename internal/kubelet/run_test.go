package kubelet

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// waitUntil polls cond: Run's loops are real goroutines.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunStartsAndRemovesPods runs the whole agent on the fake runtime
// and a fake API: the node registers, a bound pod runs and reports
// Running, and a deleted pod leaves nothing in the runtime.
func TestRunStartsAndRemovesPods(t *testing.T) {
	h := newHarness(t)
	k := h.k
	k.cfg.PLEGPeriod = 20 * time.Millisecond
	k.cfg.CNIConfDir = filepath.Join(t.TempDir(), "cni")
	k.cfg.Registerer = prometheus.NewRegistry()
	k.clock = clock.RealClock{}
	h.rt.SetClock(time.Now)
	k.pleg = k.newPLEG()
	k.backoff = newBackoff(k.cfg.BackoffInitial, k.cfg.BackoffMax, k.clock)
	k.podLister = k.factory.Core().V1().Pods().Lister()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	waitUntil(t, "node registration", func() bool {
		n, err := h.client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		return err == nil && len(n.Status.Conditions) > 0
	})
	pod := testPodSpec("web", "u1", v1.RestartPolicyAlways)
	if _, err := h.client.CoreV1().Pods("ns").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pod Running", func() bool {
		p, err := h.client.CoreV1().Pods("ns").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.Phase == v1.PodRunning
	})
	// A container that exits is noticed by the PLEG and restarted.
	first := h.container(pod, "app")
	h.rt.Exit(first.Id, 0)
	waitUntil(t, "restart after exit", func() bool {
		c := h.container(pod, "app")
		return c != nil && c.Id != first.Id && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	})
	// A sandbox of a pod the API does not know is removed.
	h.rt.SetSandboxes(append(sandboxList(h), &runtimeapi.PodSandboxStatus{Id: "orphan", State: runtimeapi.PodSandboxState_SANDBOX_READY,
		Labels: map[string]string{labelPodUID: "gone"}, Metadata: &runtimeapi.PodSandboxMetadata{Uid: "gone"}})...)
	waitUntil(t, "orphan removal", func() bool { return !hasSandbox(h, "orphan") })

	if err := h.client.CoreV1().Pods("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "pod removal from the runtime", func() bool { return len(sandboxList(h)) == 0 })
}

func sandboxList(h *harness) []*runtimeapi.PodSandboxStatus {
	sbs, _ := h.rt.ListPodSandbox(context.Background(), nil)
	var out []*runtimeapi.PodSandboxStatus
	for _, s := range sbs {
		st, err := h.rt.PodSandboxStatus(context.Background(), s.Id, false)
		if err == nil {
			out = append(out, st.Status)
		}
	}
	return out
}

func hasSandbox(h *harness, id string) bool {
	for _, s := range sandboxList(h) {
		if s.Id == id {
			return true
		}
	}
	return false
}

// TestShutdownStopsPods: without KeepContainersOnExit the agent's
// shutdown removes its pods' sandboxes.
func TestShutdownStopsPods(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	close(w.done) // the harness's worker has no goroutine
	h.k.shutdown()
	if len(sandboxList(h)) != 0 {
		t.Fatal("sandboxes left after shutdown")
	}
}

func TestServeLogsAndStreams(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	c := h.container(pod, "app")
	if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
		t.Fatal(err)
	}
	log := "2026-01-01T00:00:00.000000000Z stdout F hello\n2026-01-01T00:00:01.000000000Z stderr P part\n2026-01-01T00:00:01.500000000Z stderr F ial\n"
	if err := os.WriteFile(c.LogPath, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func(handler http.HandlerFunc, target string, vals map[string]string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for k, v := range vals {
			req.SetPathValue(k, v)
		}
		rec := httptest.NewRecorder()
		handler(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}
	path := map[string]string{"ns": "ns", "pod": "p", "container": "app"}
	tests := []struct {
		query, want string
		code        int
	}{
		{"", "hello\npartial\n", 200},
		{"?timestamps=true", "2026-01-01T00:00:00.000000000Z hello\n", 200},
		{"?tailLines=1", "partial\n", 200},
		{"?limitBytes=3", "hel", 200},
		{"?previous=true", "previous terminated container", 400},
		{"?tailLines=x", "", 400},
	}
	for _, tc := range tests {
		code, body := get(h.k.serveLogs, "/containerLogs/ns/p/app"+tc.query, path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("logs%s: %d %q, want %d containing %q", tc.query, code, body, tc.code, tc.want)
		}
	}
	if code, _ := get(h.k.serveLogs, "/containerLogs/ns/p/nope", map[string]string{"ns": "ns", "pod": "p", "container": "nope"}); code != 400 {
		t.Errorf("unknown container: %d", code)
	}
	if code, _ := get(h.k.serveLogs, "/containerLogs/ns/x/app", map[string]string{"ns": "ns", "pod": "x", "container": "app"}); code != 404 {
		t.Errorf("unknown pod: %d", code)
	}
	if code, body := get(h.k.servePods, "/pods", nil); code != 200 || !strings.Contains(body, `"name":"p"`) {
		t.Errorf("pods: %d %s", code, body)
	}
	// Exec, attach and port-forward ask the runtime for a stream URL and
	// proxy to it (here unreachable: a 5xx, after the runtime call).
	for _, tc := range []struct {
		handler http.HandlerFunc
		target  string
		call    string
	}{
		{h.k.serveExec, "/exec/ns/p/app?command=ls&output=1", "Exec"},
		{h.k.serveAttach, "/attach/ns/p/app?output=1", "Attach"},
		{h.k.servePortForward, "/portForward/ns/p", "PortForward"},
	} {
		get(tc.handler, tc.target, path)
		if h.rt.Count(tc.call) != 1 {
			t.Errorf("%s: runtime not asked", tc.target)
		}
	}
	if code, _ := get(h.k.serveExec, "/exec/ns/p/app", path); code != 400 {
		t.Errorf("exec without a command: %d", code)
	}
	if code, body := get(h.k.serveSummary, "/stats/summary", nil); code != 200 || !strings.Contains(body, `"podRef"`) {
		t.Errorf("summary: %d %s", code, body)
	}
	if code, body := get(h.k.MetricsHandler().ServeHTTP, "/metrics/resource", nil); code != 200 || !strings.Contains(body, "container_cpu_usage_seconds_total") {
		t.Errorf("resource metrics: %d %s", code, body)
	}
}

func TestGarbageCollectionAndRotation(t *testing.T) {
	h := newHarness(t)
	h.k.cfg.LogMaxSize = 10
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	// Three exits leave three dead instances; GC keeps one.
	for range 3 {
		h.rt.Exit(h.container(pod, "app").Id, 0)
		h.k.backoff.forgetPod(pod.UID)
		h.sync(w)
	}
	if err := h.k.collectContainers(context.Background()); err != nil {
		t.Fatal(err)
	}
	dead := 0
	for _, c := range h.rt.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			dead++
		}
	}
	if dead != 1 {
		t.Errorf("%d dead containers kept, want 1", dead)
	}
	c := h.container(pod, "app")
	if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.LogPath, []byte(strings.Repeat("x", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.k.rotateLog(context.Background(), c.Id); err != nil {
		t.Fatal(err)
	}
	if h.rt.Count("ReopenContainerLog") != 1 || len(rotatedLogs(c.LogPath)) != 1 {
		t.Errorf("log not rotated: %v", rotatedLogs(c.LogPath))
	}
	if err := h.k.collectImages(context.Background(), map[string]time.Time{}); err != nil {
		t.Fatal(err)
	}
}
