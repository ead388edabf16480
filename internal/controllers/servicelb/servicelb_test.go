package servicelb

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

func node(name, ip string, isReady, unschedulable bool) *corev1.Node {
	status := corev1.ConditionFalse
	if isReady {
		status = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}},
		},
	}
}

func service(name string, typ corev1.ServiceType, class *string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.ServiceSpec{Type: typ, LoadBalancerClass: class, Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

func ingress(name string, class *string) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       networkingv1.IngressSpec{IngressClassName: class},
	}
}

func serviceIPs(t *testing.T, client *fake.Clientset, name string) []string {
	t.Helper()
	svc, err := client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	return ips
}

func ingressIPs(t *testing.T, client *fake.Clientset, name string) []string {
	t.Helper()
	ing, err := client.NetworkingV1().Ingresses("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, in := range ing.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	return ips
}

// LoadBalancer Services and built-in-class Ingresses get the addresses of
// the ready, schedulable nodes; other Services, other classes and other
// implementations' Services are left alone; a node turning ready adds its
// address.
func TestPublishesReadyNodeAddresses(t *testing.T) {
	other := "example.com/lb"
	nginx := "nginx"
	objs := []runtime.Object{
		node("n1", "10.0.0.1", true, false), node("n2", "10.0.0.2", false, false), node("n3", "10.0.0.3", true, true),
		service("lb", corev1.ServiceTypeLoadBalancer, nil), service("theirs", corev1.ServiceTypeLoadBalancer, &other),
		service("plain", corev1.ServiceTypeClusterIP, nil),
		ingress("web", nil), ingress("elsewhere", &nginx),
	}
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	controllertest.Run(t, context.Background(), factory, c.Run)

	controllertest.WaitFor(t, "the LoadBalancer Service's address", func() bool {
		return slices.Equal(serviceIPs(t, client, "lb"), []string{"10.0.0.1"})
	})
	controllertest.WaitFor(t, "the Ingress's address", func() bool {
		return slices.Equal(ingressIPs(t, client, "web"), []string{"10.0.0.1"})
	})

	// The objects that are not the built-in balancer's: a direct sync
	// proves it leaves them alone, without waiting for nothing to happen.
	for _, key := range []string{"default/theirs", "default/plain", ingressPrefix + "default/elsewhere"} {
		if err := c.sync(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	if ips := serviceIPs(t, client, "theirs"); len(ips) != 0 {
		t.Errorf("a Service of another load balancer class got %v", ips)
	}
	if ips := serviceIPs(t, client, "plain"); len(ips) != 0 {
		t.Errorf("a ClusterIP Service got %v", ips)
	}
	if ips := ingressIPs(t, client, "elsewhere"); len(ips) != 0 {
		t.Errorf("an Ingress of class nginx got %v", ips)
	}

	ready := node("n2", "10.0.0.2", true, false)
	if _, err := client.CoreV1().Nodes().UpdateStatus(context.Background(), ready, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "the newly ready node's address", func() bool {
		return slices.Equal(serviceIPs(t, client, "lb"), []string{"10.0.0.1", "10.0.0.2"}) &&
			slices.Equal(ingressIPs(t, client, "web"), []string{"10.0.0.1", "10.0.0.2"})
	})
}
