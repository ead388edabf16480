package controllerutil

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// drain returns the queue's keys in order.
func drain(q workqueue.TypedInterface[string]) []string {
	var keys []string
	for q.Len() > 0 {
		k, _ := q.Get()
		keys = append(keys, k)
		q.Done(k)
	}
	return keys
}

func podOwnedBy(name string, ref metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, OwnerReferences: []metav1.OwnerReference{ref}}}
}

func TestEnqueueController(t *testing.T) {
	q := workqueue.NewTyped[string]()
	defer q.ShutDown()
	enqueue := EnqueueController(q, appsv1.SchemeGroupVersion.WithKind("StatefulSet").GroupKind())
	controller := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", Controller: ptr.To(true)}

	enqueue(podOwnedBy("a", controller))
	// A tombstone's last known object counts too.
	gone := controller
	gone.Name = "gone"
	enqueue(cache.DeletedFinalStateUnknown{Key: "ns/b", Obj: podOwnedBy("b", gone)})
	// Not the controller, another group, another kind, no owner, no object.
	notController := controller
	notController.Controller = nil
	enqueue(podOwnedBy("c", notController))
	otherGroup := controller
	otherGroup.APIVersion = "example.com/v1"
	enqueue(podOwnedBy("d", otherGroup))
	otherKind := controller
	otherKind.Kind = "ReplicaSet"
	enqueue(podOwnedBy("e", otherKind))
	enqueue(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "f"}})
	enqueue("not an object")

	if got, want := drain(q), []string{"ns/web", "ns/gone"}; !slices.Equal(got, want) {
		t.Errorf("queued %v, want %v", got, want)
	}
}

func TestEnqueueKey(t *testing.T) {
	q := workqueue.NewTyped[string]()
	defer q.ShutDown()
	enqueue := EnqueueKey(q)
	enqueue(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d"}})
	enqueue(cache.DeletedFinalStateUnknown{Key: "ns/tomb"})
	enqueue(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cluster-scoped"}})
	if got, want := drain(q), []string{"ns/d", "ns/tomb", "cluster-scoped"}; !slices.Equal(got, want) {
		t.Errorf("queued %v, want %v", got, want)
	}
}
