package apiserver

import (
	"context"
	"net"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/storage"
)

// startWebhookSourceServer is a Server on embedded etcd whose watch caches run.
func startWebhookSourceServer(t *testing.T) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := storage.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	_, cidr, _ := net.ParseCIDR("10.96.0.0/16")
	s, err := New(Config{Store: storage.NewStore(e.Client), Resources: apis.All(), ServiceCIDR: cidr})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; e.Close() })
	return s
}

// storeCached writes obj straight to storage and waits for its watch cache.
func storeCached(t *testing.T, s *Server, gvr schema.GroupVersionResource, obj runtime.Object) {
	t.Helper()
	res := s.resources[gvr]
	if res == nil {
		t.Skipf("%v not in the resource table", gvr)
	}
	ctx := context.Background()
	if _, err := res.create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if err := res.cache.WaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookSourceResolvesReadyEndpoint(t *testing.T) {
	s := startWebhookSourceServer(t)
	src := webhookSource{s}
	ctx := context.Background()
	storeCached(t, s, webhookServicesGVR, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: "webhooks"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.50", Ports: []corev1.ServicePort{
			{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090)},
			{Name: "https", Port: 443, TargetPort: intstr.FromString("serving")},
		}},
	})
	if got, err := src.ResolveService(ctx, "webhooks", "hook", 443); err != nil || got != "10.96.0.50:443" {
		t.Fatalf("without endpoints: %q, %v; want the cluster IP", got, err)
	}
	port, metrics, ready, notReady := int32(8443), int32(9090), true, false
	httpsName, metricsName := "https", "metrics"
	storeCached(t, s, endpointSlicesGVR, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "hook-abc", Namespace: "webhooks", Labels: map[string]string{discoveryv1.LabelServiceName: "hook"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: &metricsName, Port: &metrics},
			{Name: &httpsName, Port: &port},
		},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.2.4"}, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
			{Addresses: []string{"10.1.2.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
		},
	})
	if got, err := src.ResolveService(ctx, "webhooks", "hook", 443); err != nil || got != "10.1.2.3:8443" {
		t.Fatalf("ResolveService = %q, %v; want the ready endpoint on the https port", got, err)
	}
	if _, err := src.ResolveService(ctx, "webhooks", "hook", 8080); err == nil {
		t.Error("a port the Service does not have resolved")
	}
	if _, err := src.ResolveService(ctx, "webhooks", "missing", 443); !apierrors.IsNotFound(err) {
		t.Errorf("missing service: %v, want NotFound", err)
	}
}

func TestWebhookSourceConfigsAndNamespaces(t *testing.T) {
	s := startWebhookSourceServer(t)
	src := webhookSource{s}
	ctx := context.Background()
	storeCached(t, s, webhookNamespacesGVR, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}}})
	ns, err := src.GetNamespace(ctx, "prod")
	if err != nil || ns.Labels["env"] != "prod" {
		t.Fatalf("GetNamespace = %v, %v", ns, err)
	}
	if _, err := src.GetNamespace(ctx, "nope"); !apierrors.IsNotFound(err) {
		t.Errorf("missing namespace: %v, want NotFound", err)
	}
	storeCached(t, s, validatingWebhookConfigurationsGVR, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "v"}})
	storeCached(t, s, mutatingWebhookConfigurationsGVR, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "m"}})
	if v := src.ValidatingWebhookConfigurations(); len(v) != 1 || v[0].Name != "v" {
		t.Errorf("validating configurations = %v", v)
	}
	if m := src.MutatingWebhookConfigurations(); len(m) != 1 || m[0].Name != "m" {
		t.Errorf("mutating configurations = %v", m)
	}
}
