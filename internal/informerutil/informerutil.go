// Package informerutil holds what every in-process informer of Skiff's
// components shares.
package informerutil

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"
)

// StripManagedFields is an informer transform that drops metadata.managedFields
// before an object enters the cache. No controller, scheduler or node
// component reads them, and they are often the largest part of an object's
// metadata: upstream's controller manager and scheduler drop them too. An
// update sent from a stripped copy keeps the stored managed fields, since
// the API server keeps them when a request carries none.
//
// It changes the object in place, which an informer's transform may: the
// object is the reflector's own fresh decoding, not yet shared.
func StripManagedFields(obj any) (any, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		// Already transformed when it entered the cache.
		return d, nil
	}
	if m, err := meta.Accessor(obj); err == nil && m.GetManagedFields() != nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
