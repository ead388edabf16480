package apiserver

import (
	corev1 "k8s.io/api/core/v1"
)

var resourceQuotasGVR = corev1.SchemeGroupVersion.WithResource("resourcequotas")

// quotaSource lists ResourceQuotas from the watch cache for the
// ResourceQuota admission plugin, which runs on every namespaced create.
// Objects are shared with the cache and must not be modified.
type quotaSource struct{ s *Server }

func (src quotaSource) ListResourceQuotas(namespace string) []*corev1.ResourceQuota {
	res := src.s.resources[resourceQuotasGVR]
	if res == nil {
		return nil
	}
	entries, _ := res.cache.List(res.nsPrefix(namespace), nil)
	out := make([]*corev1.ResourceQuota, 0, len(entries))
	for _, e := range entries {
		if q, ok := e.Obj.(*corev1.ResourceQuota); ok {
			out = append(out, q)
		}
	}
	return out
}
