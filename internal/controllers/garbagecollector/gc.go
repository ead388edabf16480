// Package garbagecollector deletes objects whose owners are gone, and
// carries out the foreground and orphan deletion policies, from a graph of
// ownerReferences built from metadata-only informers on every resource.
package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
}

// Collector is the garbage collector.
type Collector struct {
	meta      metadata.Interface
	discovery discovery.DiscoveryInterface
	log       *slog.Logger

	mu    sync.Mutex
	graph map[types.UID]*node
	// kinds maps an owner's apiVersion/kind to its resource.
	kinds map[schema.GroupVersionKind]schema.GroupVersionResource

	attemptToDelete workqueue.TypedRateLimitingInterface[types.UID]
	attemptToOrphan workqueue.TypedRateLimitingInterface[types.UID]
}

// New builds a collector.
func New(meta metadata.Interface, disc discovery.DiscoveryInterface, log *slog.Logger) *Collector {
	rl := func(name string) workqueue.TypedRateLimitingInterface[types.UID] {
		return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.UID](),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: name})
	}
	return &Collector{
		meta: meta, discovery: disc, log: log,
		graph: map[types.UID]*node{}, kinds: map[schema.GroupVersionKind]schema.GroupVersionResource{},
		attemptToDelete: rl("gc_attempt_to_delete"), attemptToOrphan: rl("gc_attempt_to_orphan"),
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
	factory := metadatainformer.NewSharedInformerFactory(c.meta, 0)
	var synced []cache.InformerSynced
	for _, gvr := range resources {
		inf := factory.ForResource(gvr).Informer()
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.observe(gvr, o) },
			UpdateFunc: func(_, o any) { c.observe(gvr, o) },
			DeleteFunc: func(o any) { c.forget(o) },
		})
		synced = append(synced, inf.HasSynced)
	}
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
	<-ctx.Done()
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
			c.kinds[gv.WithKind(r.Kind)] = gvr
			out = append(out, gvr)
		}
	}
	return out, nil
}

func metaOf(o any) (metav1.Object, bool) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
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
	n.ref = objectRef{gvr: gvr, namespace: m.GetNamespace(), name: m.GetName(), uid: uid}
	for _, o := range n.owners {
		if owner := c.graph[o.UID]; owner != nil {
			delete(owner.dependents, uid)
		}
	}
	n.owners = m.GetOwnerReferences()
	n.finalizers = m.GetFinalizers()
	n.deleting = m.GetDeletionTimestamp() != nil
	ownerMissing := false
	for _, o := range n.owners {
		owner := c.graph[o.UID]
		if owner == nil {
			// Not seen yet (or gone): the worker checks with the API.
			ownerMissing = true
			continue
		}
		owner.dependents[uid] = true
		if owner.deleting && slices.Contains(owner.finalizers, metav1.FinalizerDeleteDependents) {
			c.attemptToDelete.Add(uid)
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
	delete(c.graph, uid)
	for d := range n.dependents {
		c.attemptToDelete.Add(d)
	}
	for _, o := range n.owners {
		if owner := c.graph[o.UID]; owner != nil {
			delete(owner.dependents, uid)
			if owner.deleting {
				c.attemptToDelete.Add(o.UID)
			}
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

// ownerState reports whether an owner reference still points at a live
// object, asking the API server when the graph does not know it.
func (c *Collector) ownerState(ctx context.Context, namespace string, ref metav1.OwnerReference) (exists, foreground bool, err error) {
	c.mu.Lock()
	if n, ok := c.graph[ref.UID]; ok {
		fg := n.deleting && slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents)
		c.mu.Unlock()
		return true, fg, nil
	}
	gv, perr := schema.ParseGroupVersion(ref.APIVersion)
	gvr, known := c.kinds[gv.WithKind(ref.Kind)]
	c.mu.Unlock()
	if perr != nil || !known {
		return false, false, nil // an owner of a kind that does not exist is dangling
	}
	obj, err := c.meta.Resource(gvr).Namespace(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return obj.UID == ref.UID, obj.DeletionTimestamp != nil && slices.Contains(obj.Finalizers, metav1.FinalizerDeleteDependents), nil
}

// processDelete decides the fate of one object: delete it when all its
// owners are gone (or are being deleted in the foreground), drop dangling
// references otherwise, and finish its own foreground deletion once its
// dependents are gone.
func (c *Collector) processDelete(ctx context.Context, uid types.UID) error {
	n, ok := c.snapshot(uid)
	if !ok {
		return nil
	}
	ri := c.meta.Resource(n.ref.gvr).Namespace(n.ref.namespace)
	if n.deleting && slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents) {
		if len(n.dependents) > 0 {
			fg := metav1.DeletePropagationForeground
			for d := range n.dependents {
				dn, ok := c.snapshot(d)
				if !ok || dn.deleting {
					continue
				}
				err := c.meta.Resource(dn.ref.gvr).Namespace(dn.ref.namespace).Delete(ctx, dn.ref.name, metav1.DeleteOptions{
					PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{UID: &dn.ref.uid},
				})
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
					return err
				}
			}
			return nil // dependents' deletions wake us again
		}
		return c.removeFinalizer(ctx, n, metav1.FinalizerDeleteDependents)
	}
	if len(n.owners) == 0 || n.deleting {
		return nil
	}
	var alive, dangling []metav1.OwnerReference
	waitingForeground := false
	for _, o := range n.owners {
		exists, fg, err := c.ownerState(ctx, n.ref.namespace, o)
		if err != nil {
			return err
		}
		switch {
		case !exists:
			dangling = append(dangling, o)
		case fg && o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion:
			waitingForeground = true
			alive = append(alive, o)
		default:
			alive = append(alive, o)
		}
	}
	switch {
	case len(alive) == 0:
		policy := metav1.DeletePropagationBackground
		err := ri.Delete(ctx, n.ref.name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &n.ref.uid}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	case waitingForeground && len(alive) == len(n.owners):
		// Every owner waits for us in foreground deletion: go first.
		policy := metav1.DeletePropagationForeground
		err := ri.Delete(ctx, n.ref.name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &n.ref.uid}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	case len(dangling) > 0:
		return c.patchOwners(ctx, n, alive)
	}
	return nil
}

// processOrphan releases an owner's dependents, then its orphan finalizer.
func (c *Collector) processOrphan(ctx context.Context, uid types.UID) error {
	n, ok := c.snapshot(uid)
	if !ok {
		return nil
	}
	for d := range n.dependents {
		dn, ok := c.snapshot(d)
		if !ok {
			continue
		}
		keep := slices.DeleteFunc(slices.Clone(dn.owners), func(o metav1.OwnerReference) bool { return o.UID == uid })
		if err := c.patchOwners(ctx, dn, keep); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return c.removeFinalizer(ctx, n, metav1.FinalizerOrphanDependents)
}

// patchOwners replaces an object's owner references, guarded by its UID.
func (c *Collector) patchOwners(ctx context.Context, n node, owners []metav1.OwnerReference) error {
	if owners == nil {
		owners = []metav1.OwnerReference{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": n.ref.uid, "ownerReferences": owners}})
	if err != nil {
		return err
	}
	_, err = c.meta.Resource(n.ref.gvr).Namespace(n.ref.namespace).Patch(ctx, n.ref.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Collector) removeFinalizer(ctx context.Context, n node, finalizer string) error {
	ri := c.meta.Resource(n.ref.gvr).Namespace(n.ref.namespace)
	obj, err := ri.Get(ctx, n.ref.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if obj.UID != n.ref.uid || !slices.Contains(obj.Finalizers, finalizer) {
		return nil
	}
	rest := slices.DeleteFunc(slices.Clone(obj.Finalizers), func(f string) bool { return f == finalizer })
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": obj.ResourceVersion, "finalizers": rest,
	}})
	if err != nil {
		return err
	}
	_, err = ri.Patch(ctx, n.ref.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer %s from %s/%s: %w", finalizer, n.ref.namespace, n.ref.name, err)
	}
	return nil
}
