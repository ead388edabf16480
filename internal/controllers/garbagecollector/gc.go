// Package garbagecollector deletes objects whose owners are gone, and
// carries out the foreground and orphan deletion policies, from a graph of
// ownerReferences built from metadata-only informers on every resource.
package garbagecollector

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/informerutil"
)

// ignored resources are never owners or dependents worth tracking.
var ignored = map[schema.GroupResource]bool{
	{Resource: "events"}:                         true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// objectRef identifies one object in the graph.
type objectRef struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
	uid       types.UID
}

// node is an object with its owners and the objects it owns.
type node struct {
	ref        objectRef
	owners     []metav1.OwnerReference
	dependents map[types.UID]bool
	finalizers []string
	deleting   bool
	// virtual nodes stand for owners named by a dependent but not (yet)
	// seen by the informers; they hold the dependents until the owner's own
	// event arrives, whatever order the informers deliver in.
	virtual bool
}

// foreground reports whether the object waits for its dependents.
func (n *node) foreground() bool {
	return n.deleting && slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents)
}

// blocks reports whether ref blocks deletion of its owner.
func blocks(ref metav1.OwnerReference) bool {
	return ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion
}

// Collector is the garbage collector.
type Collector struct {
	meta      metadata.Interface
	discovery discovery.DiscoveryInterface
	log       *slog.Logger
	// Clock ticks the discovery resync; tests pass a fake one.
	Clock clock.WithTicker

	mu    sync.Mutex
	graph map[types.UID]*node
	// kinds maps an owner's apiVersion/kind to its resource.
	kinds map[schema.GroupVersionKind]schema.GroupVersionResource

	attemptToDelete workqueue.TypedRateLimitingInterface[types.UID]
	attemptToOrphan workqueue.TypedRateLimitingInterface[types.UID]
	// rediscover asks Run to watch newly served resources now rather than
	// at the next periodic resync.
	rediscover chan struct{}
}

// New builds a collector.
func New(meta metadata.Interface, disc discovery.DiscoveryInterface, log *slog.Logger) *Collector {
	rl := func(name string) workqueue.TypedRateLimitingInterface[types.UID] {
		return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.UID](),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: name})
	}
	return &Collector{
		meta: meta, discovery: disc, log: log, Clock: clock.RealClock{},
		graph: map[types.UID]*node{}, kinds: map[schema.GroupVersionKind]schema.GroupVersionResource{},
		attemptToDelete: rl("gc_attempt_to_delete"), attemptToOrphan: rl("gc_attempt_to_orphan"),
		rediscover: make(chan struct{}, 1),
	}
}

// Run watches every deletable resource and collects garbage until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	defer c.attemptToDelete.ShutDown()
	defer c.attemptToOrphan.ShutDown()
	resources, err := c.resources()
	if err != nil {
		c.log.Error("garbage collector: discovery", "err", err)
		return
	}
	factory := metadatainformer.NewSharedInformerFactoryWithOptions(c.meta, 0, metadatainformer.WithTransform(informerutil.StripManagedFields))
	watched := map[schema.GroupVersionResource]bool{}
	synced := c.watch(factory, resources, watched)
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return
	}
	// Objects whose owners never appeared are dangling: check them all.
	c.mu.Lock()
	for uid, n := range c.graph {
		if len(n.owners) > 0 {
			c.attemptToDelete.Add(uid)
		}
	}
	c.mu.Unlock()
	for i := 0; i < 4; i++ {
		go wait.UntilWithContext(ctx, func(ctx context.Context) { c.work(ctx, c.attemptToDelete, c.processDelete) }, time.Second)
	}
	go wait.UntilWithContext(ctx, func(ctx context.Context) { c.work(ctx, c.attemptToOrphan, c.processOrphan) }, time.Second)
	// Resources appear later too (custom resources): look again
	// periodically, as upstream's collector resyncs its monitors, and at
	// once when a worker meets an owner of a kind not watched yet.
	ticker := c.Clock.NewTicker(discoveryResync)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-c.rediscover:
		}
		resources, err := c.resources()
		if err != nil {
			c.log.Warn("garbage collector: discovery", "err", err)
		}
		if len(c.watch(factory, resources, watched)) > 0 {
			factory.Start(ctx.Done())
		}
	}
}

// discoveryResync is how often the collector looks for new resources.
var discoveryResync = 30 * time.Second

// unobservedRecheck is how often a dependent is checked again while an
// owner is alive but not yet seen by an informer: until then no event
// would tell the collector that the owner went away.
var unobservedRecheck = 5 * time.Second

// watch adds informers for the resources not watched yet and returns
// their synced functions.
func (c *Collector) watch(factory metadatainformer.SharedInformerFactory, resources []schema.GroupVersionResource, watched map[schema.GroupVersionResource]bool) []cache.InformerSynced {
	var synced []cache.InformerSynced
	for _, gvr := range resources {
		if watched[gvr] {
			continue
		}
		watched[gvr] = true
		inf := factory.ForResource(gvr).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.observe(gvr, o) },
			UpdateFunc: func(_, o any) { c.observe(gvr, o) },
			DeleteFunc: func(o any) { c.forget(o) },
		})
		synced = append(synced, inf.HasSynced)
	}
	return synced
}

func (c *Collector) resources() ([]schema.GroupVersionResource, error) {
	lists, err := c.discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, err
	}
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			gvr := gv.WithResource(r.Name)
			if ignored[gvr.GroupResource()] || !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "watch") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			c.mu.Lock()
			c.kinds[gv.WithKind(r.Kind)] = gvr
			c.mu.Unlock()
			out = append(out, gvr)
		}
	}
	return out, nil
}

func metaOf(o any) (metav1.Object, bool) {
	o = informerutil.Unwrap(o)
	m, err := meta.Accessor(o)
	return m, err == nil
}

// observe records an added or updated object and queues the work its
// state calls for.
func (c *Collector) observe(gvr schema.GroupVersionResource, o any) {
	m, ok := metaOf(o)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := m.GetUID()
	n := c.graph[uid]
	if n == nil {
		n = &node{dependents: map[types.UID]bool{}}
		c.graph[uid] = n
	}
	n.virtual = false
	n.ref = objectRef{gvr: gvr, namespace: m.GetNamespace(), name: m.GetName(), uid: uid}
	c.unlinkLocked(n)
	n.owners = m.GetOwnerReferences()
	n.finalizers = m.GetFinalizers()
	n.deleting = m.GetDeletionTimestamp() != nil
	ownerMissing := false
	for _, o := range n.owners {
		owner := c.graph[o.UID]
		if owner == nil {
			owner = &node{ref: objectRef{name: o.Name, uid: o.UID}, dependents: map[types.UID]bool{}, virtual: true}
			c.graph[o.UID] = owner
		}
		owner.dependents[uid] = true
		if owner.virtual {
			// Not seen yet (or gone): the worker checks with the API.
			ownerMissing = true
			continue
		}
		switch {
		case owner.foreground():
			// The owner may be waiting on this very change.
			c.attemptToDelete.Add(uid)
			c.attemptToDelete.Add(o.UID)
		case owner.deleting && slices.Contains(owner.finalizers, metav1.FinalizerOrphanDependents):
			// A dependent that arrived late must be released too.
			c.attemptToOrphan.Add(o.UID)
		}
	}
	if ownerMissing {
		c.attemptToDelete.AddAfter(uid, time.Second)
	}
	if n.deleting {
		switch {
		case slices.Contains(n.finalizers, metav1.FinalizerOrphanDependents):
			c.attemptToOrphan.Add(uid)
		case slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents):
			c.attemptToDelete.Add(uid)
			for d := range n.dependents {
				c.attemptToDelete.Add(d)
			}
		}
	}
}

// forget removes a deleted object; its dependents may now be garbage, and
// an owner waiting in foreground deletion may now be done.
func (c *Collector) forget(o any) {
	m, ok := metaOf(o)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := m.GetUID()
	n := c.graph[uid]
	if n == nil {
		return
	}
	if n.virtual {
		return
	}
	delete(c.graph, uid)
	for d := range n.dependents {
		c.attemptToDelete.Add(d)
	}
	for _, o := range n.owners {
		if owner := c.graph[o.UID]; owner != nil && owner.deleting {
			c.attemptToDelete.Add(o.UID)
		}
	}
	c.unlinkLocked(n)
}

// unlinkLocked removes n from its owners' dependents, dropping virtual
// owners nothing refers to any more.
func (c *Collector) unlinkLocked(n *node) {
	for _, o := range n.owners {
		owner := c.graph[o.UID]
		if owner == nil {
			continue
		}
		delete(owner.dependents, n.ref.uid)
		if owner.virtual && len(owner.dependents) == 0 {
			delete(c.graph, o.UID)
		}
	}
}

func (c *Collector) work(ctx context.Context, q workqueue.TypedRateLimitingInterface[types.UID], fn func(context.Context, types.UID) error) {
	for {
		uid, quit := q.Get()
		if quit {
			return
		}
		if err := fn(ctx, uid); err != nil {
			c.log.Debug("garbage collector retry", "uid", uid, "err", err)
			q.AddRateLimited(uid)
		} else {
			q.Forget(uid)
		}
		q.Done(uid)
	}
}

func (c *Collector) snapshot(uid types.UID) (node, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.graph[uid]
	if !ok {
		return node{}, false
	}
	cp := *n
	cp.dependents = make(map[types.UID]bool, len(n.dependents))
	for d := range n.dependents {
		cp.dependents[d] = true
	}
	return cp, true
}
