package resourcequota

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// dynamicCounts counts objects of resources without a typed informer
// (custom resources, other groups) with metadata informers, started the
// first time a quota names the resource and kept for the controller's life.
type dynamicCounts struct {
	meta    metadata.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	changed func(schema.GroupResource, any)

	mu        sync.Mutex
	ctx       context.Context
	informers map[schema.GroupResource]cache.SharedIndexInformer
}

func newDynamicCounts(meta metadata.Interface, disc discovery.DiscoveryInterface, changed func(schema.GroupResource, any)) *dynamicCounts {
	return &dynamicCounts{
		meta: meta, changed: changed,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)),
		informers: map[schema.GroupResource]cache.SharedIndexInformer{},
	}
}

// start lets informers run until ctx ends; none run before.
func (d *dynamicCounts) start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ctx = ctx
}

// list lists gr's objects in ns; ok is false while gr is unknown to the
// API server. Until a new informer has synced, it asks to look again.
func (d *dynamicCounts) list(gr schema.GroupResource, ns string) ([]runtime.Object, bool, error) {
	inf, err := d.informer(gr)
	if err != nil || inf == nil {
		return nil, false, err
	}
	if !inf.HasSynced() {
		return nil, false, controllerutil.RequeueAfter(200 * time.Millisecond)
	}
	objs, err := cache.NewGenericLister(inf.GetIndexer(), gr).ByNamespace(ns).List(labels.Everything())
	return objs, true, err
}

func (d *dynamicCounts) informer(gr schema.GroupResource) (cache.SharedIndexInformer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if inf, ok := d.informers[gr]; ok {
		return inf, nil
	}
	if d.ctx == nil {
		return nil, nil
	}
	gvr, err := d.mapper.ResourceFor(gr.WithVersion(""))
	if meta.IsNoMatchError(err) {
		d.mapper.Reset() // perhaps a CRD created since the last look
		gvr, err = d.mapper.ResourceFor(gr.WithVersion(""))
	}
	if meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", gr, err)
	}
	inf := metadatainformer.NewFilteredMetadataInformer(d.meta, gvr, "", 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
	// No recount on add: admission charges creates (see controller.go).
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, o any) { d.changed(gr, o) },
		DeleteFunc: func(o any) { d.changed(gr, o) },
	})
	go inf.Run(d.ctx.Done())
	d.informers[gr] = inf
	return inf, nil
}
