package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// TestUpdateDuringGracePeriodKeepsPod pins upstream's rule for updates to
// an object marked for deletion: the update completes the deletion only
// when no finalizer is left and no grace period runs. A kubelet writes a
// terminating pod's status many times before its final delete; none of
// those writes may remove the pod early.
func TestUpdateDuringGracePeriodKeepsPod(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "terminating", Finalizers: []string{"example.com/hold"}},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	grace := int64(30)
	if err := pods.Delete(ctx, "terminating", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}

	// A status write and the removal of the last finalizer, both within
	// the grace period: the pod stays.
	p, err := pods.Get(ctx, "terminating", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	if p, err = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status update during the grace period: %v", err)
	}
	p.Finalizers = nil
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finalizer removal during the grace period: %v", err)
	}
	p, err = pods.Get(ctx, "terminating", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("pod gone during its grace period: %v", err)
	}
	if p.DeletionTimestamp == nil {
		t.Fatal("pod lost its deletionTimestamp")
	}

	// The kubelet's final delete ends it.
	zero := int64(0)
	if err := pods.Delete(ctx, "terminating", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "terminating", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the final delete: %v, want NotFound", err)
	}

	// Without a grace period, removing the last finalizer completes the
	// deletion.
	cms := s.Client.CoreV1().ConfigMaps("default")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if cm, err = cms.Get(ctx, "held", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	cm.Finalizers = nil
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("configmap after its last finalizer went: %v, want NotFound", err)
	}
}

// TestGracefulDeleteGenerationAndShortening pins upstream's bookkeeping of
// a graceful delete: the first mark moves the generation on (for objects
// that keep one), a later delete with a shorter grace period moves the
// deletion timestamp back by the difference, and a longer one changes
// nothing.
func TestGracefulDeleteGenerationAndShortening(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "slow"},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	created, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Generation != 1 {
		t.Fatalf("new pod generation %d, want 1", created.Generation)
	}
	del := func(grace int64) *corev1.Pod {
		t.Helper()
		if err := pods.Delete(ctx, "slow", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
			t.Fatal(err)
		}
		p, err := pods.Get(ctx, "slow", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := del(60)
	if first.Generation != 2 || *first.DeletionGracePeriodSeconds != 60 {
		t.Fatalf("after a 60 s delete: generation %d, grace %d; want 2 and 60", first.Generation, *first.DeletionGracePeriodSeconds)
	}
	longer := del(90)
	if longer.Generation != 2 || *longer.DeletionGracePeriodSeconds != 60 || !longer.DeletionTimestamp.Equal(first.DeletionTimestamp) {
		t.Fatalf("a longer grace period changed the pod: generation %d, grace %d, timestamp %v (was %v)",
			longer.Generation, *longer.DeletionGracePeriodSeconds, longer.DeletionTimestamp, first.DeletionTimestamp)
	}
	shorter := del(20)
	if *shorter.DeletionGracePeriodSeconds != 20 || shorter.Generation != 2 {
		t.Fatalf("after a 20 s delete: grace %d, generation %d; want 20 and 2", *shorter.DeletionGracePeriodSeconds, shorter.Generation)
	}
	if moved := first.DeletionTimestamp.Sub(shorter.DeletionTimestamp.Time); moved < 39*time.Second || moved > 41*time.Second {
		t.Errorf("deletion timestamp moved back %s, want 40 s", moved)
	}

	// An object without a grace period, held by a finalizer, gets the
	// generation bump too.
	deps := s.Client.AppsV1().Deployments("default")
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "held"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "held"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := deps.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := deps.Get(ctx, "held", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.DeletionTimestamp == nil || got.Generation != 2 {
		t.Errorf("finalized deployment after delete: deletionTimestamp %v, generation %d; want set and 2", got.DeletionTimestamp, got.Generation)
	}
}
