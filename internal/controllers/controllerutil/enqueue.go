package controllerutil

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

// EnqueueKey returns a func that adds an object's namespace/name key (a
// tombstone's too) to q.
func EnqueueKey(q workqueue.TypedInterface[string]) func(obj any) {
	return func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			q.Add(key)
		}
	}
}

// EnqueueController returns a func that adds to q the namespace/name key of
// the object's controller, when that controller is of the given group and
// kind: a change to a Job wakes its CronJob, a change to a pod its set.
func EnqueueController(q workqueue.TypedInterface[string], owner schema.GroupKind) func(obj any) {
	return func(obj any) {
		m, ok := informerutil.Unwrap(obj).(metav1.Object)
		if !ok {
			return
		}
		ref := metav1.GetControllerOfNoCopy(m)
		if ref == nil || ref.Kind != owner.Kind {
			return
		}
		if gv, err := schema.ParseGroupVersion(ref.APIVersion); err != nil || gv.Group != owner.Group {
			return
		}
		q.Add(m.GetNamespace() + "/" + ref.Name)
	}
}
