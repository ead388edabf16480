package apiserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// chunkedBody hides its length, so the request is sent chunked with no
// Content-Length for the server to check up front.
type chunkedBody struct{ r io.Reader }

func (c chunkedBody) Read(p []byte) (int, error) { return c.r.Read(p) }

func send(t *testing.T, method, url, contentType string, body io.Reader) (int, metav1.Status) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, statusOf(t, string(b))
}

func TestRequestBodyLimit(t *testing.T) {
	s := testserver.Start(t)
	big := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"` + strings.Repeat("x", 4<<20) + `"}}`
	for name, body := range map[string]io.Reader{
		"content-length": strings.NewReader(big),
		"chunked":        chunkedBody{strings.NewReader(big)},
	} {
		code, st := send(t, "POST", s.URL+"/api/v1/namespaces/default/configmaps", "application/json", body)
		if code != 413 || st.Reason != metav1.StatusReasonRequestEntityTooLarge || st.Message != "Request entity too large: limit is 3145728" {
			t.Errorf("%s: got %d %s %q", name, code, st.Reason, st.Message)
		}
	}
}

// TestObjectTooLargeForEtcd checks that an object under the body limit but
// over etcd's request limit (1.5 MiB) is refused with 413 and leaves no
// trace in etcd, on create, update and patch.
func TestObjectTooLargeForEtcd(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	big := strings.Repeat("x", 2500000)
	events := s.URL + "/api/v1/namespaces/default/events"
	event := func(name, msg string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"Event","metadata":{"name":%q},"involvedObject":{"kind":"Pod","name":"x","namespace":"default"},"reason":"R","message":%q}`, name, msg)
	}
	check := func(what string, code int, st metav1.Status) {
		t.Helper()
		if code != 413 || st.Reason != metav1.StatusReasonRequestEntityTooLarge || st.Message != "Request entity too large: etcdserver: request is too large" {
			t.Errorf("%s: got %d %s %q", what, code, st.Reason, st.Message)
		}
	}

	code, st := send(t, "POST", events, "application/json", strings.NewReader(event("huge", big)))
	check("create", code, st)
	resp, err := s.Etcd.Client.Get(ctx, "/registry/events/default/huge", clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("create left a key behind: %v %v", resp.Count, err)
	}

	small, err := s.Client.CoreV1().Events("default").Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "small"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "x", Namespace: "default"},
		Reason:         "R", Message: "small",
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	code, st = send(t, "PUT", events+"/small", "application/json", strings.NewReader(event("small", big)))
	check("update", code, st)
	code, st = send(t, "PATCH", events+"/small", "application/merge-patch+json", strings.NewReader(fmt.Sprintf(`{"message":%q}`, big)))
	check("patch", code, st)
	got, err := s.Client.CoreV1().Events("default").Get(ctx, "small", metav1.GetOptions{})
	if err != nil || got.ResourceVersion != small.ResourceVersion || got.Message != "small" {
		t.Errorf("refused writes changed the event: %v rv %s -> %s", err, small.ResourceVersion, got.ResourceVersion)
	}
}

func TestJSONPatchLimits(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"a": strings.Repeat("x", 1024)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	url := s.URL + "/api/v1/namespaces/default/configmaps/cm"

	ops := strings.TrimSuffix(strings.Repeat(`{"op":"test","path":"/kind","value":"ConfigMap"},`, 10001), ",")
	code, st := send(t, "PATCH", url, "application/json-patch+json", strings.NewReader("["+ops+"]"))
	if code != 413 || st.Reason != metav1.StatusReasonRequestEntityTooLarge ||
		st.Message != "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001" {
		t.Errorf("10001 operations: got %d %s %q", code, st.Reason, st.Message)
	}

	// Each copy doubles the object: 40 of them would need terabytes. The
	// accumulated copy limit stops the patch after a few megabytes.
	var copies []string
	for i := range 40 {
		copies = append(copies, fmt.Sprintf(`{"op":"copy","from":"/data","path":"/data/c%d"}`, i))
	}
	patch := "[" + strings.Join(copies, ",") + "]"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	code, st = send(t, "PATCH", url, "application/json-patch+json", strings.NewReader(patch))
	runtime.ReadMemStats(&after)
	if code != 422 || st.Reason != metav1.StatusReasonInvalid || st.Message != "the server rejected our request due to an error in our request" {
		t.Errorf("copy bomb: got %d %s %q, want upstream's 422", code, st.Reason, st.Message)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 200<<20 {
		t.Errorf("copy bomb allocated %d MiB", grew>>20)
	}
}

// TestSlowBodyTimesOut sends half a body and stalls past the request
// deadline: the answer is upstream's 504, while a watch outlives it.
func TestSlowBodyTimesOut(t *testing.T) {
	t.Cleanup(apiserver.SetRequestTimeout(time.Second))
	s := testserver.Start(t)

	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"apiVersion":"v1","kind":"ConfigMap",`))
		time.Sleep(3 * time.Second)
		_ = pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	start := time.Now()
	code, st := send(t, "POST", s.URL+"/api/v1/namespaces/default/configmaps", "application/json", pr)
	if code != 504 || st.Reason != metav1.StatusReasonTimeout || st.Message != "Timeout: request did not complete within the allotted timeout" {
		t.Errorf("slow body: got %d %s %q", code, st.Reason, st.Message)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("slow body answered after %v, want about the 1 s deadline", d)
	}

	w, err := s.Client.CoreV1().ConfigMaps("default").Watch(context.Background(), metav1.ListOptions{TimeoutSeconds: ptrInt64(3)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	time.Sleep(1500 * time.Millisecond)
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for ev := range w.ResultChan() {
		if cm, ok := ev.Object.(*corev1.ConfigMap); ok && cm.Name == "late" {
			return
		}
	}
	t.Error("watch ended at the request deadline")
}

func ptrInt64(n int64) *int64 { return &n }
