package informerutil

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Local serves resources to informers from the API server's own watch
// cache, for components that run in the server's process. Objects it
// returns are shared with the server and must never be changed.
type Local interface {
	LocalListerWatcher(gvr schema.GroupVersionResource) (cache.ListerWatcher, bool)
}

// sharedKinds are the resources whose informers read a Local source: those
// that grow with the cluster and that the scheduler and the controllers
// both hold (a copy of every pod and node each, otherwise).
var sharedKinds = []struct {
	obj runtime.Object
	gvr schema.GroupVersionResource
}{
	{&corev1.Pod{}, corev1.SchemeGroupVersion.WithResource("pods")},
	{&corev1.Node{}, corev1.SchemeGroupVersion.WithResource("nodes")},
}

// NewFactory returns the informer factory of an in-process component. Its
// informers drop managed fields (StripManagedFields). With a Local source,
// the informers of the kinds that grow with the cluster read it instead of
// the API: they hold the server's cached objects, managed fields and all,
// at no cost, rather than copies of their own.
func NewFactory(client kubernetes.Interface, resync time.Duration, local Local) informers.SharedInformerFactory {
	f := informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithTransform(StripManagedFields))
	if local == nil {
		return f
	}
	for _, k := range sharedKinds {
		lw, ok := local.LocalListerWatcher(k.gvr)
		if !ok {
			continue
		}
		// The factory keeps the first informer made for a type, so every
		// later request for this kind's informer gets this one.
		inf := f.InformerFor(k.obj, func(_ kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
			return cache.NewSharedIndexInformer(lw, k.obj, resync,
				cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		})
		// The objects are the server's: a transform must not change them.
		_ = inf.SetTransform(nil)
	}
	return f
}
