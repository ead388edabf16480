package manager

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The controllers' shared caches keep objects without managed fields.
func TestInformerFactoryDropsManagedFields(t *testing.T) {
	client := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: "d", Namespace: "default",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
	}})
	factory := newInformerFactory(client, nil)
	lister := factory.Apps().V1().Deployments().Lister()
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	t.Cleanup(func() { cancel(); factory.Shutdown() })
	factory.WaitForCacheSync(ctx.Done())
	d, err := lister.Deployments("default").Get("d")
	if err != nil {
		t.Fatal(err)
	}
	if d.ManagedFields != nil {
		t.Errorf("cached deployment has managed fields %v", d.ManagedFields)
	}
}
