package namespace

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// startController runs the controller against a fresh test server until
// the test ends.
func startController(t *testing.T) kubernetes.Interface {
	t.Helper()
	ts := testserver.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	dyn, err := dynamic.NewForConfig(ts.Config)
	if err != nil {
		t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(ts.Client, 0)
	ctrl := New(ts.Client, dyn, f, slog.New(slog.DiscardHandler))
	f.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); ctrl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; f.Shutdown() })
	return ts.Client
}

// waitFor polls cond until it holds or 15 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pods go first: while a finalizer holds a pod, the namespace's other
// content (here a config map) is left alone; once the pod is gone, the rest
// is deleted and the namespace with it.
func TestPodsAreDeletedBeforeOtherContent(t *testing.T) {
	c := startController(t)
	ctx := context.Background()
	const ns = "ordered"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Finalizers: []string{"example.com/hold"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// The controller has made a pass once the conditions are written.
	waitFor(t, "a pass over the namespace", func() bool {
		got, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return condition(got, corev1.NamespaceDeletionContentFailure) != nil
	})
	got, err := c.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("pod: %v, deletionTimestamp %v; want it marked for deletion", err, got.GetDeletionTimestamp())
	}
	// Give the controller a few more passes to (wrongly) delete the rest.
	time.Sleep(2500 * time.Millisecond)
	if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{}); err != nil {
		t.Fatalf("config map deleted while a pod remains: %v", err)
	}

	patch := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := c.CoreV1().Pods(ns).Patch(ctx, "p", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the namespace to be removed", func() bool {
		_, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return apierrors.IsNotFound(err)
	})
}
