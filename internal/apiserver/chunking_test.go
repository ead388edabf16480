package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// httpCall sends one request with the given Accept and returns the status
// and body.
func httpCall(t *testing.T, method, url, accept, contentType, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func createConfigMaps(t *testing.T, s *testserver.Server, ns string, n int, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%02d", i), Labels: labels}}
		if _, err := s.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChunkedListRemainingItemCount(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	const total = 7
	createConfigMaps(t, s, "chunks", total, map[string]string{"app": "x"})
	cms := s.Client.CoreV1().ConfigMaps("chunks")

	// Page through with limit 3: 3+4, 3+1, then 1 and no count.
	opts := metav1.ListOptions{Limit: 3}
	found := 0
	for page := 0; ; page++ {
		l, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if l.Continue == "" {
			if l.RemainingItemCount != nil {
				t.Errorf("page %d: last page has remainingItemCount %d", page, *l.RemainingItemCount)
			}
			found += len(l.Items)
			break
		}
		if l.RemainingItemCount == nil {
			t.Fatalf("page %d: no remainingItemCount with continue set", page)
		}
		if got, want := *l.RemainingItemCount, int64(total-found-len(l.Items)); got != want {
			t.Errorf("page %d: remainingItemCount = %d, want %d", page, got, want)
		}
		found += len(l.Items)
		opts.Continue = l.Continue
	}
	if found != total {
		t.Errorf("found %d items, want %d", found, total)
	}

	// With a selector the count is unknown: unset, as upstream.
	l, err := cms.List(ctx, metav1.ListOptions{Limit: 3, LabelSelector: "app=x"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Continue == "" || l.RemainingItemCount != nil {
		t.Errorf("selector list: continue %q, remainingItemCount %v; want a token and no count", l.Continue, l.RemainingItemCount)
	}

	// The Table and metadata-only forms carry the count too.
	for _, accept := range []string{
		"application/json;as=Table;v=v1;g=meta.k8s.io",
		"application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
	} {
		code, body := httpCall(t, http.MethodGet, s.URL+"/api/v1/namespaces/chunks/configmaps?limit=5", accept, "", "")
		var got struct {
			Kind     string          `json:"kind"`
			Metadata metav1.ListMeta `json:"metadata"`
		}
		if err := json.Unmarshal(body, &got); err != nil || code != http.StatusOK {
			t.Fatalf("%s: %d %s (%v)", accept, code, body, err)
		}
		if got.Metadata.RemainingItemCount == nil || *got.Metadata.RemainingItemCount != 2 || got.Metadata.Continue == "" {
			t.Errorf("%s: %s metadata %+v, want remainingItemCount 2 and a continue token", accept, got.Kind, got.Metadata)
		}
	}
}

func TestChunkedListCompactedContinue(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	const total = 5
	createConfigMaps(t, s, "compacted", total, nil)
	cms := s.Client.CoreV1().ConfigMaps("compacted")
	first, err := cms.List(ctx, metav1.ListOptions{Limit: 2})
	if err != nil || first.Continue == "" {
		t.Fatalf("first page: %v, continue %q", err, first.Continue)
	}

	// Move the revision on elsewhere and compact the first page's snapshot away.
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bump"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Etcd.Client.Get(ctx, "/registry/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Etcd.Client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	_, err = cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: first.Continue})
	if !apierrors.IsResourceExpired(err) {
		t.Fatalf("continue after compaction: %v, want 410 Expired", err)
	}
	inconsistent := err.(apierrors.APIStatus).Status().ListMeta.Continue
	if inconsistent == "" {
		t.Fatal("410 carries no continue token to resume with")
	}
	second, err := cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: inconsistent})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Items) != 2 || second.Items[0].Name != "cm-02" || second.ResourceVersion == first.ResourceVersion {
		t.Errorf("resumed page: %d items from %q at rv %s (first rv %s)", len(second.Items), firstName(second), second.ResourceVersion, first.ResourceVersion)
	}
	if second.RemainingItemCount == nil || *second.RemainingItemCount != 1 {
		t.Errorf("resumed page remainingItemCount = %v, want 1", second.RemainingItemCount)
	}
}

func firstName(l *corev1.ConfigMapList) string {
	if len(l.Items) == 0 {
		return ""
	}
	return l.Items[0].Name
}
