package apiserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/internal/storage"
)

var (
	mutatingWebhookConfigurationsGVR   = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingwebhookconfigurations")
	validatingWebhookConfigurationsGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("validatingwebhookconfigurations")
	webhookNamespacesGVR               = corev1.SchemeGroupVersion.WithResource("namespaces")
	webhookServicesGVR                 = corev1.SchemeGroupVersion.WithResource("services")
)

// webhookSource gives the admission webhook plugins their configurations,
// namespaces and service addresses from the watch caches. Objects are
// shared with the caches: read only. Every resource may be missing (a
// server built with a partial resource table): no configurations then.
type webhookSource struct{ s *Server }

func (src webhookSource) MutatingWebhookConfigurations() []*admissionregistrationv1.MutatingWebhookConfiguration {
	return listCached[*admissionregistrationv1.MutatingWebhookConfiguration](src.s, mutatingWebhookConfigurationsGVR, "")
}

func (src webhookSource) ValidatingWebhookConfigurations() []*admissionregistrationv1.ValidatingWebhookConfiguration {
	return listCached[*admissionregistrationv1.ValidatingWebhookConfiguration](src.s, validatingWebhookConfigurationsGVR, "")
}

func listCached[T any](s *Server, gvr schema.GroupVersionResource, namespace string) []T {
	res := s.resources[gvr]
	if res == nil {
		return nil
	}
	entries, _ := res.cache.List(res.nsPrefix(namespace), nil)
	out := make([]T, 0, len(entries))
	for _, e := range entries {
		if obj, ok := e.Obj.(T); ok {
			out = append(out, obj)
		}
	}
	return out
}

// GetNamespace reads the cache, then etcd (cachedNamespace).
func (src webhookSource) GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return src.s.cachedNamespace(ctx, name)
}

// cachedNamespace reads a namespace from the watch cache and, on a miss,
// from etcd: one created just before the request may not be cached yet
// (upstream's admission plugins fall back to a live read too).
func (s *Server) cachedNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	res := s.resources[webhookNamespacesGVR]
	if res == nil {
		return nil, apierrors.NewNotFound(webhookNamespacesGVR.GroupResource(), name)
	}
	if e, ok := res.cache.Get(res.key("", name)); ok {
		if ns, ok := e.Obj.(*corev1.Namespace); ok {
			return ns, nil
		}
	}
	obj, _, err := res.get(ctx, "", name)
	if err != nil {
		return nil, err
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, fmt.Errorf("namespace %s: unexpected %T", name, obj)
	}
	return ns, nil
}

// ResolveService returns a ready endpoint of the Service's port (the
// server may run without a node proxy, so the cluster IP may not route),
// falling back to the cluster IP; for an ExternalName Service, its name.
func (src webhookSource) ResolveService(_ context.Context, namespace, name string, port int32) (string, error) {
	res := src.s.resources[webhookServicesGVR]
	if res == nil {
		return "", apierrors.NewNotFound(webhookServicesGVR.GroupResource(), name)
	}
	e, ok := res.cache.Get(res.key(namespace, name))
	if !ok {
		return "", apierrors.NewNotFound(webhookServicesGVR.GroupResource(), name)
	}
	svc, ok := e.Obj.(*corev1.Service)
	if !ok {
		return "", fmt.Errorf("service %s/%s: unexpected %T", namespace, name, e.Obj)
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(port))), nil
	}
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			svcPort = &svc.Spec.Ports[i]
		}
	}
	if svcPort == nil {
		return "", fmt.Errorf("no service port %d found for service %q", port, name)
	}
	if addr, ok := src.readyEndpoint(namespace, name, svcPort); ok {
		return addr, nil
	}
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		return net.JoinHostPort(ip, strconv.Itoa(int(port))), nil
	}
	return "", fmt.Errorf("service %s/%s has no ready endpoints", namespace, name)
}

// readyEndpoint picks a random ready address of the Service's
// EndpointSlices for svcPort: the slice port named like the service port,
// or, for a numeric targetPort, with that number.
func (src webhookSource) readyEndpoint(namespace, name string, svcPort *corev1.ServicePort) (string, bool) {
	res := src.s.resources[endpointSlicesGVR]
	if res == nil {
		return "", false
	}
	selector := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
	entries, _ := res.cache.List(res.nsPrefix(namespace), func(e *storage.Entry) bool {
		return selector.Matches(e.Labels)
	})
	var candidates []string
	for _, e := range entries {
		slice, ok := e.Obj.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		port, ok := slicePort(slice, svcPort)
		if !ok {
			continue
		}
		for _, ep := range slice.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || len(ep.Addresses) == 0 {
				continue
			}
			candidates = append(candidates, net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port))))
		}
	}
	if len(candidates) == 0 {
		return "", false
	}
	return candidates[rand.IntN(len(candidates))], true
}

func slicePort(slice *discoveryv1.EndpointSlice, svcPort *corev1.ServicePort) (int32, bool) {
	for _, p := range slice.Ports {
		if p.Port != nil && p.Name != nil && *p.Name == svcPort.Name {
			return *p.Port, true
		}
	}
	if svcPort.TargetPort.Type != intstr.Int {
		return 0, false
	}
	for _, p := range slice.Ports {
		if p.Port != nil && *p.Port == svcPort.TargetPort.IntVal {
			return *p.Port, true
		}
	}
	return 0, false
}
