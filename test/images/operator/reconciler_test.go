package main

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := addToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReconcileWritesConfigMapAndStatus: a Widget gets a ConfigMap it
// controls holding its size, and a status saying so; a new size is
// followed.
func TestReconcileWritesConfigMapAndStatus(t *testing.T) {
	ctx := context.Background()
	s := newScheme(t)
	w := &Widget{
		ObjectMeta: metav1.ObjectMeta{Name: "w1", Namespace: "ns", UID: "uid-1", Generation: 1},
		Spec:       WidgetSpec{Size: 3},
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(w).WithStatusSubresource(&Widget{}).Build()
	r := &widgetReconciler{client: c, scheme: s}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "w1"}}

	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	checkConfigMap(t, c, "3")
	var got Widget
	if err := c.Get(ctx, req.NamespacedName, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ObservedSize == nil || *got.Status.ObservedSize != 3 {
		t.Errorf("status.observedSize = %v, want 3", got.Status.ObservedSize)
	}
	if cond := meta.FindStatusCondition(got.Status.Conditions, conditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("Ready condition = %+v, want True", cond)
	}

	got.Spec.Size = 5
	if err := c.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	checkConfigMap(t, c, "5")
}

// TestReconcileDeletedWidget: a Widget that is gone is no error (its
// ConfigMap is the garbage collector's business).
func TestReconcileDeletedWidget(t *testing.T) {
	s := newScheme(t)
	c := fake.NewClientBuilder().WithScheme(s).Build()
	r := &widgetReconciler{client: c, scheme: s}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "gone"}}); err != nil {
		t.Fatalf("reconcile of a deleted widget: %v", err)
	}
}

func checkConfigMap(t *testing.T, c client.Client, size string) {
	t.Helper()
	var cm corev1.ConfigMap
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "ns", Name: "w1-widget"}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["size"] != size {
		t.Errorf("data.size = %q, want %q", cm.Data["size"], size)
	}
	owner := metav1.GetControllerOf(&cm)
	if owner == nil || owner.Kind != "Widget" || owner.APIVersion != "e2e.skiff.dev/v1" || owner.Name != "w1" || owner.UID != "uid-1" {
		t.Errorf("controller reference = %+v, want the Widget w1", owner)
	}
}
