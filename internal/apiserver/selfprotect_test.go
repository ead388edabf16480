package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/storage"
)

// newUnstartedServer is a Server whose watch caches never run: every
// consistent read must be served from etcd.
func newUnstartedServer(t *testing.T, extra map[string]http.Handler) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := storage.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	_, cidr, _ := net.ParseCIDR("10.96.0.0/16")
	s, err := New(Config{Store: storage.NewStore(e.Client), Resources: apis.All(), ServiceCIDR: cidr, ExtraHandlers: extra})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); cancel(); e.Close() })
	return hs
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestConsistentListFallsBackToEtcd: a LIST the watch cache cannot serve
// in time is read from etcd, not answered 504.
func TestConsistentListFallsBackToEtcd(t *testing.T) {
	hs := newUnstartedServer(t, nil)
	resp, err := http.Post(hs.URL+"/api/v1/namespaces", "application/json", strings.NewReader(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create namespace: %d", resp.StatusCode)
	}
	code, body := get(t, hs.URL+"/api/v1/namespaces")
	var list corev1.NamespaceList
	if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
		t.Fatalf("list: %d %v %.300s", code, err, body)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "team-a" || list.ResourceVersion == "" {
		t.Errorf("list from etcd: %+v", list)
	}
}

// TestHandlerPanicIsRecovered: a panicking handler answers 500 with a
// Status, is counted, and the server goes on serving.
func TestHandlerPanicIsRecovered(t *testing.T) {
	hs := newUnstartedServer(t, map[string]http.Handler{
		"/boom": http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
	})
	before := crash.Count("apiserver")
	code, body := get(t, hs.URL+"/boom")
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("not a Status: %v %s", err, body)
	}
	if code != 500 || st.Reason != metav1.StatusReasonInternalError || st.Message != "This request caused apiserver to panic. Look in the logs for details." {
		t.Errorf("got %d %s %q", code, st.Reason, st.Message)
	}
	if got := crash.Count("apiserver") - before; got != 1 {
		t.Errorf("skiff_panics_total{component=apiserver} grew by %v, want 1", got)
	}
	if code, _ := get(t, hs.URL+"/healthz"); code != 200 {
		t.Errorf("healthz after panic: %d", code)
	}
}
