package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestDeleteStatusCodes pins upstream's answers to DELETE: 200 with the
// object whether it is gone or only marked (grace period, finalizers), and
// 202 only for a pending delete that set orphanDependents=false.
func TestDeleteStatusCodes(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	for _, name := range []string{"graceful", "cascading"} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "free"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	base := s.URL + "/api/v1/namespaces/default/"
	for _, tc := range []struct {
		what, path, body string
		code             int
		marked           bool  // deletionTimestamp set in the answer
		grace            int64 // deletionGracePeriodSeconds expected when marked
	}{
		{"graceful pod delete", "pods/graceful?gracePeriodSeconds=30", "", http.StatusOK, true, 30},
		{"repeated graceful delete", "pods/graceful", "", http.StatusOK, true, 30},
		{"orphanDependents=false on a graceful delete", "pods/cascading",
			`{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":10,"orphanDependents":false}`, http.StatusAccepted, true, 10},
		{"finalizer pending", "configmaps/held", "", http.StatusOK, true, 0},
		{"foreground on a finalized object", "configmaps/held?propagationPolicy=Foreground", "", http.StatusOK, true, 0},
		{"immediate delete", "configmaps/free", `{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":false}`, http.StatusOK, false, 0},
	} {
		ct := ""
		if tc.body != "" {
			ct = "application/json"
		}
		code, out := httpCall(t, http.MethodDelete, base+tc.path, "", ct, tc.body)
		var got metav1.PartialObjectMetadata
		if err := json.Unmarshal(out, &got); err != nil || code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.what, code, out, tc.code)
			continue
		}
		if tc.marked && got.Kind == "Status" {
			t.Errorf("%s: answered a Status, want the marked object", tc.what)
		}
		if (got.DeletionTimestamp != nil) != tc.marked {
			t.Errorf("%s: deletionTimestamp %v, want set=%v", tc.what, got.DeletionTimestamp, tc.marked)
		}
		if tc.marked && (got.DeletionGracePeriodSeconds == nil || *got.DeletionGracePeriodSeconds != tc.grace) {
			t.Errorf("%s: deletionGracePeriodSeconds %v, want %d", tc.what, got.DeletionGracePeriodSeconds, tc.grace)
		}
	}

	// client-go sees the graceful delete succeed and the pod linger.
	p, err := pods.Get(ctx, "graceful", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil {
		t.Errorf("pod after graceful delete: %v, deletionTimestamp %v", err, p.GetDeletionTimestamp())
	}
}
