package apiserver

import (
	corev1 "k8s.io/api/core/v1"
)

var limitRangesGVR = corev1.SchemeGroupVersion.WithResource("limitranges")

// limitRangeSource lists LimitRanges from the watch cache, so admitting a
// pod costs no etcd round trip. Objects are shared with the cache and must
// not be modified.
type limitRangeSource struct{ s *Server }

func (src limitRangeSource) ListLimitRanges(namespace string) []*corev1.LimitRange {
	res := src.s.resources[limitRangesGVR]
	if res == nil {
		return nil
	}
	entries, _ := res.cache.List(res.nsPrefix(namespace), nil)
	out := make([]*corev1.LimitRange, 0, len(entries))
	for _, e := range entries {
		if lr, ok := e.Obj.(*corev1.LimitRange); ok {
			out = append(out, lr)
		}
	}
	return out
}
