package scheduler

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The scheduler's informers keep objects without their managed fields,
// which it never reads and which would otherwise be a large part of every
// cached pod.
func TestInformersDropManagedFields(t *testing.T) {
	client := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "p", Namespace: "default",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}},
	}})
	s := New(Config{Client: client})
	t.Cleanup(s.events.Shutdown)
	ctx, cancel := context.WithCancel(context.Background())
	s.factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); s.factory.Shutdown() })
	s.factory.WaitForCacheSync(ctx.Done())
	pod, err := s.podLister.Pods("default").Get("p")
	if err != nil {
		t.Fatal(err)
	}
	if pod.ManagedFields != nil {
		t.Errorf("cached pod has managed fields %v", pod.ManagedFields)
	}
}
