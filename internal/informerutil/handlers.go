package informerutil

import "k8s.io/client-go/tools/cache"

// Unwrap returns the last known object a deletion tombstone carries, or obj
// itself when it is no tombstone.
func Unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// OnAddOrUpdate returns event handlers that call f with the object, the new
// one for an update, on every add and update.
func OnAddOrUpdate(f func(obj any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, obj any) { f(obj) }}
}

// OnAnyChange is OnAddOrUpdate that also calls f on a delete, with the
// object a tombstone carries, so f never sees a tombstone.
func OnAnyChange(f func(obj any)) cache.ResourceEventHandlerFuncs {
	h := OnAddOrUpdate(f)
	h.DeleteFunc = func(obj any) { f(Unwrap(obj)) }
	return h
}
