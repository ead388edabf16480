package apiserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// series finds the sample of family name whose labels include want; nil
// when there is none.
func series(t *testing.T, fams []*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got, ok := have[k]; !ok || got != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func TestRequestMetricsCarryUpstreamLabels(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	cms := srv.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{DryRun: []string{"All"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "a", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "missing", metav1.GetOptions{}); err == nil {
		t.Fatal("get of a missing object succeeded")
	}
	if _, err := srv.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	apply := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}}`
	if _, err := cms.Patch(ctx, "c", types.ApplyPatchType, []byte(apply), metav1.PatchOptions{FieldManager: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	// A path that names nothing served makes no series.
	resp, err := http.Get(srv.URL + "/api/v1/nosuchthings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	w, err := cms.Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptr.To[int64](30)})
	if err != nil {
		t.Fatal(err)
	}
	fams, err := srv.API.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()

	for _, tc := range []struct {
		name   string
		labels map[string]string
		count  float64
	}{
		{"POST", map[string]string{"verb": "POST", "dry_run": "", "group": "", "version": "v1", "resource": "configmaps", "subresource": "", "scope": "namespace", "component": "apiserver", "code": "201"}, 1},
		{"dry-run POST", map[string]string{"verb": "POST", "dry_run": "All", "resource": "configmaps", "code": "201"}, 1},
		{"GET", map[string]string{"verb": "GET", "resource": "configmaps", "scope": "namespace", "code": "200"}, 1},
		{"GET 404", map[string]string{"verb": "GET", "resource": "configmaps", "code": "404"}, 1},
		{"cluster LIST", map[string]string{"verb": "LIST", "resource": "nodes", "scope": "cluster", "code": "200"}, 1},
		{"APPLY", map[string]string{"verb": "APPLY", "resource": "configmaps", "code": "201"}, 1},
		{"namespace object", map[string]string{"verb": "GET", "resource": "namespaces", "scope": "namespace", "code": "200"}, 1},
	} {
		m := series(t, fams, "apiserver_request_total", tc.labels)
		if m == nil || m.GetCounter().GetValue() != tc.count {
			t.Errorf("%s: apiserver_request_total%v = %v, want %v", tc.name, tc.labels, m, tc.count)
		}
	}
	if m := series(t, fams, "apiserver_request_total", map[string]string{"resource": "nosuchthings"}); m != nil {
		t.Errorf("an unserved resource made a series: %v", m)
	}
	if m := series(t, fams, "apiserver_request_duration_seconds", map[string]string{"verb": "POST", "dry_run": "", "resource": "configmaps"}); m == nil {
		t.Error("no apiserver_request_duration_seconds for POST configmaps")
	} else {
		h := m.GetHistogram()
		if h.GetSampleCount() != 1 || len(h.GetBucket()) != 23 || h.GetBucket()[0].GetUpperBound() != 0.005 || h.GetBucket()[22].GetUpperBound() != 60 {
			t.Errorf("duration histogram: count %d, %d buckets from %v", h.GetSampleCount(), len(h.GetBucket()), h.GetBucket()[0].GetUpperBound())
		}
		for _, l := range m.GetLabel() {
			if l.GetName() == "code" {
				t.Error("the duration histogram has a code label")
			}
		}
	}
	// The watch was open while gathering.
	if m := series(t, fams, "apiserver_longrunning_requests", map[string]string{"verb": "WATCH", "resource": "configmaps", "scope": "namespace"}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("apiserver_longrunning_requests for the open watch = %v, want 1", m)
	}
	if m := series(t, fams, "apiserver_registered_watchers", map[string]string{"group": "", "version": "v1", "kind": "ConfigMap"}); m == nil || m.GetGauge().GetValue() != 1 {
		t.Errorf("apiserver_registered_watchers for ConfigMaps = %v, want 1", m)
	}
	if m := series(t, fams, "apiserver_storage_objects", map[string]string{"resource": "configmaps"}); m == nil || m.GetGauge().GetValue() < 2 {
		t.Errorf("apiserver_storage_objects{resource=configmaps} = %v, want >= 2", m)
	}
	if m := series(t, fams, "etcd_request_duration_seconds", map[string]string{"operation": "create", "type": "configmaps"}); m == nil || m.GetHistogram().GetSampleCount() < 2 {
		t.Errorf("etcd_request_duration_seconds{create,configmaps} = %v, want >= 2 samples", m)
	}
	for _, kind := range []string{"readOnly", "mutating"} {
		if m := series(t, fams, "apiserver_current_inflight_requests", map[string]string{"request_kind": kind}); m == nil || m.GetGauge().GetValue() < 1 {
			t.Errorf("apiserver_current_inflight_requests{request_kind=%s} = %v, want a watermark >= 1", kind, m)
		}
	}
}

func TestWatchGaugesFallWhenTheWatchEnds(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	w, err := srv.Client.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name string, labels map[string]string) float64 {
		fams, err := srv.API.Metrics().Gather()
		if err != nil {
			t.Fatal(err)
		}
		return series(t, fams, name, labels).GetGauge().GetValue()
	}
	watching := map[string]string{"verb": "WATCH", "resource": "pods", "scope": "cluster"}
	if got := gauge("apiserver_longrunning_requests", watching); got != 1 {
		t.Fatalf("longrunning while watching = %v, want 1", got)
	}
	w.Stop()
	testserver.Eventually(t, "the watch gauges to drop", func() bool {
		return gauge("apiserver_longrunning_requests", watching) == 0 &&
			gauge("apiserver_registered_watchers", map[string]string{"kind": "Pod"}) == 0
	})
}

func TestNonResourceRequestsAreRecordedByPath(t *testing.T) {
	srv := testserver.Start(t)
	for _, p := range []string{"/healthz", "/version", "/random/path"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	fams, err := srv.API.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/healthz", "/version"} {
		m := series(t, fams, "apiserver_request_total", map[string]string{"verb": "GET", "subresource": p, "scope": "", "resource": "", "code": "200"})
		if m == nil || m.GetCounter().GetValue() != 1 {
			t.Errorf("%s: %v, want one request", p, m)
		}
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "random") {
					t.Errorf("an unknown path made a series: %s %v", f.GetName(), m)
				}
			}
		}
	}
}
