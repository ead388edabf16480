package apiserver_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/internal/informerutil"
	"github.com/skiff-dev/skiff/internal/testserver"
)

var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

func localPod(name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// An in-process informer built on the local lister-watcher follows the
// API as an HTTP one does, and holds the watch cache's objects themselves.
func TestLocalInformerSharesCachedObjects(t *testing.T) {
	s := testserver.StartWith(t, testserver.Options{ServiceCIDR: "10.96.0.0/24", WatchCacheHistory: 100})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := s.Client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, localPod("a", "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	factory := informerutil.NewFactory(s.Client, 0, s.API)
	lister := factory.Core().V1().Pods().Lister()
	factory.Start(ctx.Done())
	defer func() { cancel(); factory.Shutdown() }()
	factory.WaitForCacheSync(ctx.Done())

	held, err := lister.Pods("default").Get("a")
	if err != nil {
		t.Fatal(err)
	}
	if len(held.ManagedFields) == 0 {
		t.Error("the shared pod lost its managed fields: a transform changed the server's object")
	}
	lw, ok := s.API.LocalListerWatcher(podsGVR)
	if !ok {
		t.Fatal("pods are not served locally")
	}
	list, err := lw.List(metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	items := list.(*metav1.List).Items
	if len(items) != 1 || items[0].Object != held {
		t.Fatalf("informer holds %p, cache lists %v: want the same object", held, items)
	}

	// Changes reach the informer.
	if _, err := pods.Create(ctx, localPod("b", "db"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, errA := lister.Pods("default").Get("a")
		_, errB := lister.Pods("default").Get("b")
		return apierrors.IsNotFound(errA) && errB == nil, nil
	})
	if err != nil {
		t.Fatalf("informer did not see b created and a deleted: %v", err)
	}
}

// The local watch applies selectors as the HTTP watch does: an object
// leaving the selection is a DELETED event.
func TestLocalWatchSelectorsAndErrors(t *testing.T) {
	s := testserver.StartWith(t, testserver.Options{ServiceCIDR: "10.96.0.0/24", WatchCacheHistory: 100})
	ctx := context.Background()
	pods := s.Client.CoreV1().Pods("default")
	created, err := pods.Create(ctx, localPod("a", "web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lw, _ := s.API.LocalListerWatcher(podsGVR)
	wlw := lw.(cache.ListerWatcherWithContext)

	w, err := wlw.WatchWithContext(ctx, metav1.ListOptions{LabelSelector: "app=web", ResourceVersion: created.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	created.Labels["app"] = "other"
	if _, err := pods.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Deleted || ev.Object.(*corev1.Pod).Name != "a" {
			t.Errorf("got %s %v, want a DELETED for a", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the pod leaving the selector")
	}
	w.Stop()
	if _, ok := <-w.ResultChan(); ok {
		t.Error("a stopped watch still delivers")
	}

	if _, err := wlw.WatchWithContext(ctx, metav1.ListOptions{FieldSelector: "spec.unknown=x"}); !apierrors.IsBadRequest(err) {
		t.Errorf("unsupported field selector: %v, want a 400", err)
	}
	if _, err := wlw.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: "x1"}); !apierrors.IsBadRequest(err) {
		t.Errorf("watch from resourceVersion x1: %v, want a 400", err)
	}
	bookmarked, err := wlw.WatchWithContext(ctx, metav1.ListOptions{SendInitialEvents: new(true), AllowWatchBookmarks: true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if err != nil {
		t.Fatal(err)
	}
	defer bookmarked.Stop()
	var initial int
	for ev := range bookmarked.ResultChan() {
		if ev.Type == watch.Bookmark {
			m := ev.Object.(*corev1.Pod)
			if m.Annotations["k8s.io/initial-events-end"] != "true" || m.ResourceVersion == "" {
				t.Errorf("initial-events bookmark %+v", m.ObjectMeta)
			}
			break
		}
		initial++
	}
	if initial != 1 {
		t.Errorf("%d initial events, want 1", initial)
	}
}
