package apiserver_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestMetadataWatchBookmarks watches through client-go's metadata client,
// as metadata informers and the garbage collector do: a bookmark must come
// as PartialObjectMetadata, or the client's decoder ends the watch.
func TestMetadataWatchBookmarks(t *testing.T) {
	s := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mc := metadata.NewForConfigOrDie(s.Config)
	w, err := mc.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace("default").Watch(ctx, metav1.ListOptions{
		AllowWatchBookmarks:  true,
		SendInitialEvents:    ptr.To(true),
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var sawAdded bool
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Added:
			sawAdded = true
		case watch.Bookmark:
			m, ok := ev.Object.(*metav1.PartialObjectMetadata)
			if !ok {
				t.Fatalf("bookmark is %T", ev.Object)
			}
			if m.ResourceVersion == "" || m.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
				t.Errorf("bookmark metadata %+v", m.ObjectMeta)
			}
			if !sawAdded {
				t.Error("bookmark before the initial events")
			}
			return
		case watch.Error:
			t.Fatalf("watch error: %v", ev.Object)
		}
	}
	t.Fatal("watch ended without a bookmark")
}
