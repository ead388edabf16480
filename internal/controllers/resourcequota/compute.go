package resourcequota

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/quota"
)

// ListFunc lists the objects of gr in a namespace; ok is false for a
// resource it cannot list.
type ListFunc func(gr schema.GroupResource, namespace string) (objs []runtime.Object, ok bool, err error)

// Used computes status.used of a quota in namespace: for every hard
// resource, the sum over the namespace's objects in the quota's scopes.
// Resources whose objects cannot be listed are left out.
func Used(spec *corev1.ResourceQuotaSpec, namespace string, list ListFunc, now time.Time) (corev1.ResourceList, error) {
	needed := map[schema.GroupResource]bool{}
	for n := range spec.Hard {
		if gr, ok := quota.CountedResource(n); ok {
			needed[gr] = true
		}
		if gr, ok := quota.EvaluatedBy(n); ok {
			needed[gr] = true
		}
	}
	sum := corev1.ResourceList{}
	known := map[schema.GroupResource]bool{}
	for gr := range needed {
		objs, ok, err := list(gr, namespace)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		known[gr] = true
		for _, o := range objs {
			if quota.InScope(spec, o) {
				quota.AddTo(sum, quota.Usage(gr, o, now))
			}
		}
	}
	used := corev1.ResourceList{}
	for n := range spec.Hard {
		gr, ok := quota.CountedResource(n)
		if !ok {
			gr, ok = quota.EvaluatedBy(n)
		}
		if !ok || !known[gr] {
			continue
		}
		if q, has := sum[n]; has {
			used[n] = q
		} else {
			used[n] = *resource.NewQuantity(0, resource.DecimalSI)
		}
	}
	return used, nil
}

// Equal compares resource lists by quantity value.
func Equal(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for n, q := range a {
		o, ok := b[n]
		if !ok || q.Cmp(o) != 0 {
			return false
		}
	}
	return true
}
