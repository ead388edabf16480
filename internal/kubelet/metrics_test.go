package kubelet

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/internal/kubelet/fakeruntime"
)

// scrape GETs path from the kubelet's metrics handler and parses the text
// exposition as Prometheus would.
func scrape(t *testing.T, k *Kubelet, path string) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	k.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("GET %s: parse: %v\n%s", path, err, rec.Body)
	}
	return families
}

// sample finds the one series of name whose labels include want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no %s", name)
	}
	var found []*dto.Metric
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			if got, has := labels[k]; !has || got != v {
				ok = false
			}
		}
		if ok {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1; all: %v", name, want, len(found), f.Metric)
	}
	return found[0]
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.Label {
		out = append(out, l.GetName())
	}
	slices.Sort(out)
	return out
}

func bounds(m *dto.Metric) []float64 {
	var out []float64
	for _, b := range m.Histogram.Bucket {
		if !math.IsInf(b.GetUpperBound(), 1) { // the parser adds +Inf
			out = append(out, b.GetUpperBound())
		}
	}
	return out
}

func TestKubeletMetrics(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	if !h.running(pod, "app") {
		t.Fatalf("pod not started: %v", h.rt.Calls())
	}
	ctx := context.Background()
	if err := h.k.pleg.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	h.clock.Step(1500 * time.Millisecond)
	if err := h.k.pleg.Relist(ctx); err != nil {
		t.Fatal(err)
	}
	h.rt.InjectError("ListContainerStats", errors.New("runtime down"))
	if _, err := h.k.summary(ctx); err == nil {
		t.Fatal("summary: want the injected error")
	}
	h.k.metrics.podWorker.WithLabelValues(syncCreate).Observe(0.2)

	fams := scrape(t, h.k, "/metrics")
	if v := value(sample(t, fams, "kubelet_node_name", map[string]string{"node": "n1"})); v != 1 {
		t.Errorf("kubelet_node_name = %v", v)
	}
	if v := value(sample(t, fams, "kubelet_running_pods", nil)); v != 1 {
		t.Errorf("kubelet_running_pods = %v, want 1", v)
	}
	for state, want := range map[string]float64{"running": 1, "created": 0, "exited": 0, "unknown": 0} {
		if v := value(sample(t, fams, "kubelet_running_containers", map[string]string{"container_state": state})); v != want {
			t.Errorf("kubelet_running_containers{container_state=%q} = %v, want %v", state, v, want)
		}
	}
	ops := func(name, op string) float64 {
		return value(sample(t, fams, name, map[string]string{"operation_type": op}))
	}
	if v := ops("kubelet_runtime_operations_total", "run_podsandbox"); v != 1 {
		t.Errorf("run_podsandbox operations = %v, want 1", v)
	}
	if v := ops("kubelet_runtime_operations_total", "start_container"); v != 1 {
		t.Errorf("start_container operations = %v, want 1", v)
	}
	if v := ops("kubelet_runtime_operations_total", "list_podsandbox"); v < 2 {
		t.Errorf("list_podsandbox operations = %v, want at least the 2 relists", v)
	}
	if v := ops("kubelet_runtime_operations_errors_total", "list_container_stats"); v != 1 {
		t.Errorf("list_container_stats errors = %v, want 1", v)
	}
	if h := sample(t, fams, "kubelet_runtime_operations_duration_seconds", map[string]string{"operation_type": "create_container"}).Histogram; h.GetSampleCount() != 1 {
		t.Errorf("create_container durations: %d samples", h.GetSampleCount())
	}
	if m := sample(t, fams, "kubelet_run_podsandbox_duration_seconds", map[string]string{"runtime_handler": ""}); m.Histogram.GetSampleCount() != 1 {
		t.Errorf("run_podsandbox durations: %d samples", m.Histogram.GetSampleCount())
	}

	start := sample(t, fams, "kubelet_pod_start_duration_seconds", nil)
	if !slices.Equal(bounds(start), podStartBuckets) {
		t.Errorf("pod start buckets %v, want upstream's %v", bounds(start), podStartBuckets)
	}
	if start.Histogram.GetSampleCount() != 1 {
		t.Errorf("pod starts observed: %d, want 1", start.Histogram.GetSampleCount())
	}
	interval := sample(t, fams, "kubelet_pleg_relist_interval_seconds", nil)
	if interval.Histogram.GetSampleCount() != 1 || interval.Histogram.GetSampleSum() != 1.5 {
		t.Errorf("relist interval: %d samples, sum %v; want 1 of 1.5 s", interval.Histogram.GetSampleCount(), interval.Histogram.GetSampleSum())
	}
	if got := bounds(interval); !slices.Equal(got, prometheus.DefBuckets) {
		t.Errorf("relist interval buckets %v", got)
	}
	if got := bounds(sample(t, fams, "kubelet_pleg_relist_duration_seconds", nil)); !slices.Equal(got, prometheus.DefBuckets) {
		t.Errorf("relist duration buckets %v", got)
	}
	if v, want := value(sample(t, fams, "kubelet_pleg_last_seen_seconds", nil)), float64(h.clock.Now().UnixNano())/1e9; v != want {
		t.Errorf("kubelet_pleg_last_seen_seconds = %v, want %v", v, want)
	}
	worker := sample(t, fams, "kubelet_pod_worker_duration_seconds", map[string]string{"operation_type": "create"})
	if !slices.Equal(bounds(worker), prometheus.DefBuckets) {
		t.Errorf("pod worker buckets %v", bounds(worker))
	}
	for name, typ := range map[string]dto.MetricType{
		"kubelet_running_pods": dto.MetricType_GAUGE, "kubelet_runtime_operations_total": dto.MetricType_COUNTER,
		"kubelet_pod_start_duration_seconds": dto.MetricType_HISTOGRAM, "kubelet_pleg_last_seen_seconds": dto.MetricType_GAUGE,
	} {
		if got := fams[name].GetType(); got != typ {
			t.Errorf("%s is a %v, want %v", name, got, typ)
		}
	}
}

func TestSyncOperation(t *testing.T) {
	tests := []struct {
		first, terminating, timer bool
		want                      string
	}{
		{true, false, true, "create"},
		{true, true, true, "kill"},
		{false, true, false, "kill"},
		{false, false, true, "sync"},
		{false, false, false, "update"},
	}
	for _, tc := range tests {
		if got := syncOperation(tc.first, tc.terminating, tc.timer); got != tc.want {
			t.Errorf("syncOperation(%v, %v, %v) = %q, want %q", tc.first, tc.terminating, tc.timer, got, tc.want)
		}
	}
}

// statsRuntime reports fixed usage for every running container.
type statsRuntime struct {
	*fakeruntime.Runtime
	at time.Time
}

func (r statsRuntime) ListContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	base, err := r.Runtime.ListContainerStats(ctx, f)
	ts := r.at.UnixNano()
	u := func(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }
	for _, s := range base {
		s.Cpu = &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u(2_500_000_000)}
		s.Memory = &runtimeapi.MemoryUsage{Timestamp: ts, WorkingSetBytes: u(100 << 20), UsageBytes: u(150 << 20), RssBytes: u(80 << 20)}
	}
	return base, err
}

// usageHarness runs one pod "p" (container "app", 256Mi and 500m limits)
// on a runtime with fixed stats.
func usageHarness(t *testing.T) (*harness, *runtimeapi.ContainerStatus, time.Time) {
	h := newHarness(t)
	at := time.Unix(1_700_000_000, 0)
	h.k.runtime = instrument(&runtimeClient{runtime: statsRuntime{h.rt, at}, images: h.rt}, h.k.metrics)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Spec.Containers[0].Resources.Limits = v1.ResourceList{
		v1.ResourceMemory: resource.MustParse("256Mi"), v1.ResourceCPU: resource.MustParse("500m")}
	w := h.add(pod)
	h.sync(w)
	c := h.container(pod, "app")
	if c == nil || c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("app not running: %v", h.rt.Calls())
	}
	return h, c, at
}

func TestResourceMetrics(t *testing.T) {
	h, c, at := usageHarness(t)
	fams := scrape(t, h.k, "/metrics/resource")
	ctr := map[string]string{"container": "app", "pod": "p", "namespace": "ns"}
	pod := map[string]string{"pod": "p", "namespace": "ns"}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"container_cpu_usage_seconds_total", ctr, 2.5},
		{"container_memory_working_set_bytes", ctr, 100 << 20},
		{"pod_cpu_usage_seconds_total", pod, 2.5},
		{"pod_memory_working_set_bytes", pod, 100 << 20},
		{"container_start_time_seconds", ctr, float64(c.CreatedAt) / 1e9},
		{"scrape_error", nil, 0},
		{"resource_scrape_error", nil, 0},
	} {
		m := sample(t, fams, tc.name, tc.labels)
		if v := value(m); v != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, v, tc.want)
		}
		if want := []string(nil); tc.labels == nil && !slices.Equal(labelNames(m), want) {
			t.Errorf("%s labels %v", tc.name, labelNames(m))
		}
		if tc.labels != nil && len(m.Label) != len(tc.labels) {
			t.Errorf("%s labels %v, want exactly %v", tc.name, labelNames(m), tc.labels)
		}
	}
	if ts := sample(t, fams, "container_cpu_usage_seconds_total", ctr).GetTimestampMs(); ts != at.UnixMilli() {
		t.Errorf("cpu sample stamped %d, want the stats time %d", ts, at.UnixMilli())
	}
	for _, name := range []string{"node_cpu_usage_seconds_total", "node_memory_working_set_bytes"} {
		if m := sample(t, fams, name, nil); value(m) <= 0 {
			t.Errorf("%s = %v", name, value(m))
		}
	}

	h.rt.InjectError("ListContainerStats", errors.New("runtime down"))
	fams = scrape(t, h.k, "/metrics/resource")
	if v := value(sample(t, fams, "resource_scrape_error", nil)); v != 1 {
		t.Errorf("resource_scrape_error after a failed stats call = %v, want 1", v)
	}
	if _, ok := fams["container_cpu_usage_seconds_total"]; ok {
		t.Error("container series served from a failed stats call")
	}
}

func TestCadvisorMetrics(t *testing.T) {
	h, c, _ := usageHarness(t)
	fams := scrape(t, h.k, "/metrics/cadvisor")
	podCgroup := "/kubepods/podu1" // limits only: Guaranteed
	ctr := map[string]string{"container": "app", "pod": "p", "namespace": "ns", "image": "busybox",
		"name": c.Id, "id": podCgroup + "/" + c.Id}
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"container_cpu_usage_seconds_total", 2.5},
		{"container_memory_working_set_bytes", 100 << 20},
		{"container_memory_usage_bytes", 150 << 20},
		{"container_memory_rss", 80 << 20},
		{"container_spec_memory_limit_bytes", 256 << 20},
		{"container_spec_cpu_quota", 50000},
		{"container_spec_cpu_period", 100000},
		{"container_spec_cpu_shares", 512},
		{"container_start_time_seconds", float64(c.CreatedAt) / 1e9},
	} {
		m := sample(t, fams, tc.name, ctr)
		if v := value(m); v != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, v, tc.want)
		}
		if got := labelNames(m); !slices.Equal(got, []string{"container", "id", "image", "name", "namespace", "pod"}) {
			t.Errorf("%s labels %v", tc.name, got)
		}
	}
	// The pod's cgroup and the node's root cgroup, as cAdvisor reports them.
	podLabels := map[string]string{"container": "", "image": "", "name": "", "pod": "p", "namespace": "ns", "id": podCgroup}
	if v := value(sample(t, fams, "container_memory_working_set_bytes", podLabels)); v != 100<<20 {
		t.Errorf("pod cgroup working set = %v", v)
	}
	if v := value(sample(t, fams, "container_cpu_usage_seconds_total", map[string]string{"id": "/", "pod": ""})); v <= 0 {
		t.Errorf("root cgroup cpu = %v", v)
	}
	if fams["container_cpu_usage_seconds_total"].GetType() != dto.MetricType_COUNTER {
		t.Error("container_cpu_usage_seconds_total is not a counter")
	}
	// The resource endpoint's own series are not cAdvisor's.
	if _, ok := fams["pod_cpu_usage_seconds_total"]; ok {
		t.Error("/metrics/cadvisor serves the resource endpoint's pod series")
	}
}

// TestExpositionEscapesAndGzips: label values and help texts with the
// characters the text format escapes parse back unchanged, and a client
// that accepts gzip gets the same text compressed.
func TestExpositionEscapesAndGzips(t *testing.T) {
	odd := "a\"b\\c\nd"
	h := serveExposition(func(e *exposition) {
		e.family("odd_total", "help with \\ and \n", "counter").add(2, time.UnixMilli(1234), "v", odd)
		e.family("empty", "no samples, no family", "gauge")
		e.family("plain", "a gauge", "gauge").add(0.5, time.Time{})
	})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept-Encoding", "deflate, gzip;q=0.9")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", rec.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	m := sample(t, fams, "odd_total", map[string]string{"v": odd})
	if value(m) != 2 || m.GetTimestampMs() != 1234 || fams["odd_total"].GetHelp() != "help with \\ and \n" {
		t.Errorf("odd_total: %v, help %q", m, fams["odd_total"].GetHelp())
	}
	if _, ok := fams["empty"]; ok {
		t.Error("a family without samples was written")
	}
	if v := value(sample(t, fams, "plain", nil)); v != 0.5 {
		t.Errorf("plain = %v", v)
	}
}
