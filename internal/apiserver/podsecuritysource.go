package apiserver

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

var ingressClassesGVR = networkingv1.SchemeGroupVersion.WithResource("ingressclasses")

// podSecuritySource gives the PodSecurity admission plugin namespaces and
// pods from the watch caches. Objects are shared with the cache and must
// not be modified.
type podSecuritySource struct{ s *Server }

// GetNamespace reads the cache, then etcd (cachedNamespace).
func (src podSecuritySource) GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return src.s.cachedNamespace(ctx, name)
}

// ListPods lists the namespace's pods from the watch cache.
func (src podSecuritySource) ListPods(_ context.Context, namespace string) ([]*corev1.Pod, error) {
	res := src.s.resources[podsGVR]
	if res == nil {
		return nil, nil
	}
	entries, _ := res.cache.List(res.nsPrefix(namespace), nil)
	out := make([]*corev1.Pod, 0, len(entries))
	for _, e := range entries {
		if p, ok := e.Obj.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// ingressClassSource lists IngressClasses from the watch cache for the
// DefaultIngressClass admission plugin. Objects are shared: read only.
type ingressClassSource struct{ s *Server }

func (src ingressClassSource) ListIngressClasses() []*networkingv1.IngressClass {
	res := src.s.resources[ingressClassesGVR]
	if res == nil {
		return nil
	}
	entries, _ := res.cache.List(res.prefix, nil)
	out := make([]*networkingv1.IngressClass, 0, len(entries))
	for _, e := range entries {
		if c, ok := e.Obj.(*networkingv1.IngressClass); ok {
			out = append(out, c)
		}
	}
	return out
}
