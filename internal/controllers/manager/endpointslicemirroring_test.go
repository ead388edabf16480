package manager

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/controllers/endpointslicemirroring"
)

// TestEndpointSliceMirroringAsServiceAccount follows upstream's conformance
// test (custom Endpoints mirrored through create, update and delete) with
// the controller acting as its upstream ServiceAccount under the default
// policy, so a missing permission fails here.
func TestEndpointSliceMirroringAsServiceAccount(t *testing.T) {
	url := startAuthServer(t)
	admin := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, BearerToken: "admin", QPS: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = Run(ctx, Config{RESTConfig: &rest.Config{Host: url, BearerToken: "kcm", QPS: -1}, UseServiceAccountCredentials: true, Logger: quietLog()})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "example-custom-endpoints"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "example", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	if _, err := admin.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name}, Subsets: []corev1.EndpointSubset{{
		Ports: []corev1.EndpointPort{{Port: 80}}, Addresses: []corev1.EndpointAddress{{IP: "10.1.2.3"}},
	}}}
	ep, err := admin.CoreV1().Endpoints("default").Create(ctx, ep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mirrored := func(ip string) func() bool {
		return func() bool {
			l, err := admin.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
			if err != nil || len(l.Items) != 1 {
				return false
			}
			s := l.Items[0]
			return s.Labels[discoveryv1.LabelManagedBy] == endpointslicemirroring.ManagedBy &&
				len(s.Ports) == 1 && *s.Ports[0].Port == 80 &&
				len(s.Endpoints) == 1 && s.Endpoints[0].Addresses[0] == ip &&
				len(s.OwnerReferences) == 1 && s.OwnerReferences[0].UID == ep.UID
		}
	}
	eventually(t, "mirrored slice", mirrored("10.1.2.3"))

	ep.Subsets[0].Addresses = []corev1.EndpointAddress{{IP: "10.2.3.4"}}
	if ep, err = admin.CoreV1().Endpoints("default").Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "updated slice", mirrored("10.2.3.4"))

	if err := admin.CoreV1().Endpoints("default").Delete(ctx, ep.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slices removed", func() bool {
		l, err := admin.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
		return err == nil && len(l.Items) == 0
	})
}
