// Package volumeprotection keeps claims and volumes in use from going
// away: the pvc-protection controller holds the kubernetes.io/pvc-protection
// finalizer of a deleted claim while a running pod uses it, and the
// pv-protection controller holds kubernetes.io/pv-protection of a deleted
// volume while it is bound, as upstream's controllers of those names do.
// Both also add their finalizer to objects created without it.
package volumeprotection

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// The finalizers, as upstream names them.
const (
	PVCFinalizer = "kubernetes.io/pvc-protection"
	PVFinalizer  = "kubernetes.io/pv-protection"
)

// withFinalizer returns finalizers with f added (add) or removed, and
// whether that changed anything.
func withFinalizer(finalizers []string, f string, add bool) ([]string, bool) {
	has := slices.Contains(finalizers, f)
	switch {
	case add && !has:
		return append(slices.Clone(finalizers), f), true
	case !add && has:
		return slices.DeleteFunc(slices.Clone(finalizers), func(s string) bool { return s == f }), true
	}
	return finalizers, false
}

// finalizerChange decides what the controller does with an object's
// finalizer: add it to a live object, remove it from a deleting one no
// longer in use, nothing otherwise.
func finalizerChange(obj metav1.Object, f string, inUse func() (bool, error)) (add, remove bool, err error) {
	has := slices.Contains(obj.GetFinalizers(), f)
	if obj.GetDeletionTimestamp() == nil {
		return !has, false, nil
	}
	if !has {
		return false, false, nil
	}
	used, err := inUse()
	return false, !used && err == nil, err
}

// keyOf is the queue key of an informer object (tombstones included).
func keyOf(o any) (string, bool) {
	if _, ok := o.(runtime.Object); !ok {
		if _, ok := o.(cache.DeletedFinalStateUnknown); !ok {
			return "", false
		}
	}
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o)
	return key, err == nil
}
