package servicecidr

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
	"github.com/skiff-dev/skiff/internal/testserver"
)

func readyCondition(sc *networkingv1.ServiceCIDR) *metav1.Condition {
	return meta.FindStatusCondition(sc.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
}

// A ServiceCIDR gets the finalizer and Ready; deleting it waits until no
// Service IP depends on it alone.
func TestServiceCIDRLifecycle(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	c := s.Client
	factory := informers.NewSharedInformerFactory(c, 0)
	ctrl := New(c, factory, slog.Default())
	ctrl.grace = 200 * time.Millisecond
	controllertest.Run(t, ctx, factory, ctrl.Run)

	cidrs := c.NetworkingV1().ServiceCIDRs()
	get := func(name string) *networkingv1.ServiceCIDR {
		sc, err := cidrs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	create := func(name, cidr string) {
		sc := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{cidr}}}
		if _, err := cidrs.Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		controllertest.WaitFor(t, name+" protected and ready", func() bool {
			sc := get(name)
			r := readyCondition(sc)
			return slices.Contains(sc.Finalizers, Finalizer) && r != nil && r.Status == metav1.ConditionTrue && r.Message == readyMessage
		})
	}
	create("extra", "10.99.0.0/24")
	// The default one is protected too: the kubernetes Service lives in it.
	controllertest.WaitFor(t, "default ServiceCIDR protected", func() bool {
		return slices.Contains(get("kubernetes").Finalizers, Finalizer)
	})

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "inside"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.99.0.5", Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cidrs.Delete(ctx, "extra", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "extra marked terminating", func() bool {
		r := readyCondition(get("extra"))
		return r != nil && r.Status == metav1.ConditionFalse && r.Reason == networkingv1.ServiceCIDRReasonTerminating
	})
	time.Sleep(3 * ctrl.grace)
	if get("extra") == nil {
		t.Fatal("ServiceCIDR removed while a Service IP depends on it")
	}
	// A range being deleted gives no more addresses.
	svc2 := svc.DeepCopy()
	svc2.Name, svc2.Spec.ClusterIP = "late", "10.99.0.6"
	if _, err := c.CoreV1().Services("default").Create(ctx, svc2, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("address from a ServiceCIDR being deleted: %v", err)
	}

	if err := c.CoreV1().Services("default").Delete(ctx, "inside", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "extra released", func() bool { return get("extra") == nil })

	// A range inside another one goes at once, IPs or not.
	create("inner", "10.96.128.0/24")
	svc3 := svc.DeepCopy()
	svc3.Name, svc3.Spec.ClusterIP = "nested", "10.96.128.7"
	if _, err := c.CoreV1().Services("default").Create(ctx, svc3, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cidrs.Delete(ctx, "inner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "nested ServiceCIDR released", func() bool { return get("inner") == nil })
}
