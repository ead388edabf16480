package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/storage"
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

// UpdateResourceQuotaStatus stores q if its resourceVersion is still the
// stored one: admission charges a quota with a compare-and-swap, as
// upstream. On a conflict it returns the stored quota with the error.
func (src quotaSource) UpdateResourceQuotaStatus(ctx context.Context, q *corev1.ResourceQuota) (*corev1.ResourceQuota, error) {
	res := src.s.resources[resourceQuotasGVR]
	if res == nil {
		return nil, errors.New("resourcequotas are not served")
	}
	rev, err := strconv.ParseInt(q.ResourceVersion, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("quota %s/%s resourceVersion %q: %w", q.Namespace, q.Name, q.ResourceVersion, err)
	}
	data, err := res.encode(q)
	if err != nil {
		return nil, err
	}
	_, cur, err := res.store.Update(ctx, res.key(q.Namespace, q.Name), data, rev)
	if errors.Is(err, storage.ErrConflict) {
		obj, derr := res.decode(cur.Value, cur.Rev)
		if derr != nil {
			return nil, derr
		}
		if stored, ok := obj.(*corev1.ResourceQuota); ok {
			return stored, storageError(err, res.gr, q.Name)
		}
	}
	if err != nil {
		return nil, storageError(err, res.gr, q.Name)
	}
	return nil, nil
}
