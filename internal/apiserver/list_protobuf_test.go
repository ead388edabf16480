package apiserver

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/storage"
)

// listRequest is a protobuf LIST request for r served by a bare Server,
// answering into a recorder.
func listRequest(tb testing.TB, r *apis.Resource) (*request, *httptest.ResponseRecorder) {
	tb.Helper()
	c, err := newCodecs()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{codecs: c, log: slog.New(slog.DiscardHandler)}
	res := &resource{Resource: r, gr: r.GVR.GroupResource(), codecs: c}
	rec := httptest.NewRecorder()
	hr := httptest.NewRequest(http.MethodGet, "/api/v1/pods", nil)
	hr.Header.Set("Accept", mediaProtobuf)
	return &request{Server: s, w: rec, r: hr, ctx: hr.Context(), res: res}, rec
}

func builtin(tb testing.TB, gvr schema.GroupVersionResource) *apis.Resource {
	tb.Helper()
	for _, r := range apis.All() {
		if r.GVR == gvr {
			return r
		}
	}
	tb.Fatalf("no built-in resource %s", gvr)
	return nil
}

// testPod is a pod with the fields a real one has, as the cache holds it:
// apiVersion, kind and resourceVersion set.
func testPod(i int) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("pod-%05d", i), Namespace: "default", UID: "0b4c5a2e-6a3f-4c1e-9f5e-000000000000",
			ResourceVersion: strconv.Itoa(100 + i), Labels: map[string]string{"app": "web", "i": strconv.Itoa(i)},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
			Annotations:       map[string]string{"note": "a longer annotation value so that the item is not tiny"},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/web:1.2.3", Args: []string{"--port=8080", "--verbose"},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "MODE", Value: "production"}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: apiresource.MustParse("100m"), corev1.ResourceMemory: apiresource.MustParse("128Mi"),
				}},
			}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0." + strconv.Itoa(i%250)},
	}
}

func entriesOf(objs []k8sruntime.Object) []*storage.Entry {
	es := make([]*storage.Entry, len(objs))
	for i, o := range objs {
		es[i] = &storage.Entry{Key: fmt.Sprintf("/registry/x/%05d", i), Obj: o}
	}
	return es
}

// wholeList is what the generic path (newList + fillList + the protobuf
// serializer) answers for objs.
func wholeList(tb testing.TB, r *apis.Resource, objs []k8sruntime.Object, rev int64) []byte {
	tb.Helper()
	q, rec := listRequest(tb, r)
	if err := q.writeList(accept{media: mediaProtobuf}, objs, strconv.FormatInt(rev, 10), "", nil); err != nil {
		tb.Fatal(err)
	}
	return rec.Body.Bytes()
}

func streamedList(tb testing.TB, r *apis.Resource, entries []*storage.Entry, rev int64) []byte {
	tb.Helper()
	q, rec := listRequest(tb, r)
	if err := q.writeProtobufList(entries, rev); err != nil {
		tb.Fatal(err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != mediaProtobuf {
		tb.Fatalf("Content-Type %q", ct)
	}
	return rec.Body.Bytes()
}

func TestProtobufListMatchesWholeListEncoding(t *testing.T) {
	pods := builtin(t, podsGVR)
	for _, n := range []int{0, 1, 5, 300} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			objs := make([]k8sruntime.Object, n)
			for i := range objs {
				p := testPod(i)
				if i%2 == 1 {
					// Typed items carry no TypeMeta in protobuf: an object
					// with or without it encodes alike.
					p.TypeMeta = metav1.TypeMeta{}
				}
				objs[i] = p
			}
			want := wholeList(t, pods, objs, 4242)
			entries := entriesOf(objs)
			got := streamedList(t, pods, entries, 4242)
			if !bytes.Equal(got, want) {
				t.Fatalf("streamed %d bytes differ from whole-list %d bytes", len(got), len(want))
			}
			// The reused encoding buffer leaves nothing behind: a second
			// LIST is the same.
			if again := streamedList(t, pods, entries, 4242); !bytes.Equal(again, want) {
				t.Fatal("second streamed list differs")
			}

			c, _ := newCodecs()
			dec, _, err := c.protobuf.Decode(got, nil, &corev1.PodList{})
			if err != nil {
				t.Fatal(err)
			}
			l := dec.(*corev1.PodList)
			if l.ResourceVersion != "4242" || l.Kind != "PodList" || l.APIVersion != "v1" || len(l.Items) != n {
				t.Fatalf("decoded %s/%s rv %q with %d items", l.APIVersion, l.Kind, l.ResourceVersion, len(l.Items))
			}
			for i := range l.Items {
				wantPod := *objs[i].(*corev1.Pod)
				wantPod.TypeMeta = metav1.TypeMeta{}
				if !equality.Semantic.DeepEqual(l.Items[i], wantPod) {
					t.Fatalf("item %d decoded as %+v", i, l.Items[i])
				}
			}
		})
	}
}

// Every built-in list type has the layout the streamed encoding assumes,
// and streams the same bytes as the generic path.
func TestProtobufListEveryBuiltinResource(t *testing.T) {
	for _, r := range apis.All() {
		if r.NewList == nil || r.New == nil {
			continue
		}
		if !streamableProtoList(r.NewList()) {
			t.Errorf("%s: list %T is not streamed", r.GVR, r.NewList())
			continue
		}
		objs := make([]k8sruntime.Object, 3)
		for i := range objs {
			o := r.New()
			o.(metav1.Object).SetName(fmt.Sprintf("x-%d", i))
			o.(metav1.Object).SetResourceVersion(strconv.Itoa(7 + i))
			objs[i] = o
		}
		if got, want := streamedList(t, r, entriesOf(objs), 9), wholeList(t, r, objs, 9); !bytes.Equal(got, want) {
			t.Errorf("%s: streamed bytes differ from the whole-list encoding", r.GVR)
		}
	}
	if streamableProtoList(&unstructured.UnstructuredList{}) || streamableProtoList(&metav1.Table{}) {
		t.Error("a list without the k8s.io/api layout is streamable")
	}
}

// An item that cannot be encoded fails the LIST with a Status, even past
// the first items: all sizes are known before anything is written.
func TestProtobufListEncodingErrorIsStatus(t *testing.T) {
	pods := builtin(t, podsGVR)
	objs := make([]k8sruntime.Object, 40)
	for i := range objs {
		objs[i] = testPod(i)
	}
	objs[30] = &unstructured.Unstructured{Object: map[string]any{"kind": "Pod"}}
	q, rec := listRequest(t, pods)
	err := q.writeProtobufList(entriesOf(objs), 5)
	if err == nil {
		t.Fatal("no error for an item without a protobuf encoding")
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
		t.Fatalf("wrote %d bytes (%q) before failing", rec.Body.Len(), rec.Header().Get("Content-Type"))
	}
	// What the handler does with a returned error.
	q.writeError(rec, q.r, err)
	var st metav1.Status
	if _, _, err := q.codecs.protobuf.Decode(rec.Body.Bytes(), nil, &st); err != nil {
		t.Fatalf("answer is no Status: %v", err)
	}
	if st.Code != http.StatusInternalServerError || st.Status != metav1.StatusFailure {
		t.Fatalf("status %d %q: %s", st.Code, st.Status, st.Message)
	}
}

// Concurrent LISTs of the same entries, sharing the objects, agree.
func TestProtobufListConcurrentFirstEncoding(t *testing.T) {
	pods := builtin(t, podsGVR)
	objs := make([]k8sruntime.Object, 200)
	for i := range objs {
		objs[i] = testPod(i)
	}
	want := wholeList(t, pods, objs, 3)
	entries := entriesOf(objs)
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() { got[i] = streamedList(t, pods, entries, 3) })
	}
	wg.Wait()
	for i, b := range got {
		if !bytes.Equal(b, want) {
			t.Errorf("list %d differs", i)
		}
	}
}

// discardWriter is a ResponseWriter that throws the body away.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func benchEntries(b *testing.B, n int) (*request, []*storage.Entry) {
	pods := builtin(b, podsGVR)
	objs := make([]k8sruntime.Object, n)
	for i := range objs {
		objs[i] = testPod(i)
	}
	q, _ := listRequest(b, pods)
	q.w = &discardWriter{h: http.Header{}}
	return q, entriesOf(objs)
}

// BenchmarkProtobufList10k compares one LIST of 10,000 cached pods: the
// whole-list path (as list() did before) and the streamed one.
func BenchmarkProtobufList10k(b *testing.B) {
	q, entries := benchEntries(b, 10000)
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			objs := make([]k8sruntime.Object, len(entries))
			for i, e := range entries {
				objs[i] = e.Obj
			}
			if err := q.writeList(accept{media: mediaProtobuf}, objs, "9", "", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("streamed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := q.writeProtobufList(entries, 9); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProtobufList40Concurrent runs 40 concurrent LISTs of a list of
// about 35 MB and reports the peak heap growth over the cached objects.
func BenchmarkProtobufList40Concurrent(b *testing.B) {
	q, entries := benchEntries(b, 1)
	big := testPod(0)
	big.Annotations["blob"] = string(bytes.Repeat([]byte("x"), 3000))
	one, _ := big.Marshal()
	objs := make([]k8sruntime.Object, 35<<20/len(one))
	for i := range objs {
		p := big.DeepCopy()
		p.Name = fmt.Sprintf("pod-%05d", i)
		objs[i] = p
	}
	entries = entriesOf(objs)
	b.Logf("%d pods, list ~%d MB", len(objs), len(one)*len(objs)>>20)
	run := func(b *testing.B, list func(*request)) {
		for b.Loop() {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base, peak := ms.HeapAlloc, ms.HeapAlloc
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapAlloc)
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}()
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() {
					c := *q
					c.w = &discardWriter{h: http.Header{}}
					list(&c)
				})
			}
			wg.Wait()
			close(stop)
			<-sampled
			b.ReportMetric(float64(peak-base)/(1<<20), "peak-heap-MB")
		}
	}
	b.Run("whole", func(b *testing.B) {
		run(b, func(q *request) {
			o := make([]k8sruntime.Object, len(entries))
			for i, e := range entries {
				o[i] = e.Obj
			}
			_ = q.writeList(accept{media: mediaProtobuf}, o, "9", "", nil)
		})
	})
	b.Run("streamed", func(b *testing.B) {
		run(b, func(q *request) { _ = q.writeProtobufList(entries, 9) })
	})
}
