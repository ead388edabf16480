package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// ownerState reports whether an owner reference still points at a live
// object, asking the API server when the graph does not know it.
func (c *Collector) ownerState(ctx context.Context, namespace string, ref metav1.OwnerReference) (exists, foreground bool, err error) {
	c.mu.Lock()
	if n, ok := c.graph[ref.UID]; ok && !n.virtual {
		fg := n.foreground()
		c.mu.Unlock()
		return true, fg, nil
	}
	gv, perr := schema.ParseGroupVersion(ref.APIVersion)
	gvr, known := c.kinds[gv.WithKind(ref.Kind)]
	c.mu.Unlock()
	if perr == nil && !known && c.discovery != nil {
		// A kind served since the last discovery (a new custom resource)
		// is not dangling: look again before deciding.
		if _, err := c.resources(); err == nil {
			c.mu.Lock()
			gvr, known = c.kinds[gv.WithKind(ref.Kind)]
			c.mu.Unlock()
			if known {
				select {
				case c.rediscover <- struct{}{}:
				default:
				}
			}
		}
	}
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

// observed reports whether an informer has delivered the object.
func (c *Collector) observed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.graph[uid]
	return ok && !n.virtual
}

// processDelete decides the fate of one object, as upstream does: an
// object in foreground deletion finishes once no dependent blocks it; any
// other object with owners keeps its live owners, or is deleted when none
// is left.
func (c *Collector) processDelete(ctx context.Context, uid types.UID) error {
	n, ok := c.snapshot(uid)
	if !ok || n.virtual {
		return nil
	}
	if n.foreground() {
		return c.processDeletingDependents(ctx, n)
	}
	if len(n.owners) == 0 || n.deleting {
		return nil
	}
	var solid, dangling, waiting []metav1.OwnerReference
	for _, o := range n.owners {
		exists, fg, err := c.ownerState(ctx, n.ref.namespace, o)
		if err != nil {
			return err
		}
		switch {
		case !exists:
			dangling = append(dangling, o)
		case fg:
			waiting = append(waiting, o)
		default:
			solid = append(solid, o)
		}
	}
	switch {
	case len(solid) > 0:
		if slices.ContainsFunc(solid, func(o metav1.OwnerReference) bool { return !c.observed(o.UID) }) {
			// Deleting an owner no informer watches yet sends no event:
			// look again until the owner's informer has seen it.
			c.attemptToDelete.AddAfter(uid, unobservedRecheck)
		}
		if len(dangling) == 0 && len(waiting) == 0 {
			return nil
		}
		// A live owner keeps the object; owners waiting in the foreground
		// must not wait for it, so their references go too.
		return c.patchOwners(ctx, n, solid)
	case len(waiting) > 0 && len(n.dependents) > 0:
		// An owner waits for us and we have dependents of our own: go in
		// the foreground too. A dependent already waiting the same way may
		// close a cycle, so stop blocking our owners first.
		if c.anyForegroundDependent(n) {
			if err := c.unblockOwners(ctx, n); err != nil {
				return err
			}
		}
		return c.deleteObject(ctx, n, metav1.DeletePropagationForeground)
	default:
		policy := metav1.DeletePropagationBackground
		switch {
		case slices.Contains(n.finalizers, metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case slices.Contains(n.finalizers, metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		return c.deleteObject(ctx, n, policy)
	}
}

// processDeletingDependents finishes a foreground deletion once no
// dependent blocks it, and nudges the blocking dependents along.
func (c *Collector) processDeletingDependents(ctx context.Context, n node) error {
	c.mu.Lock()
	blocking := c.blockingLocked(n.ref.uid)
	for _, d := range blocking {
		if !c.graph[d].foreground() {
			c.attemptToDelete.Add(d)
		}
	}
	cycle := len(blocking) > 0 && c.inCycleLocked(n.ref.uid)
	c.mu.Unlock()
	switch {
	case len(blocking) == 0:
		return c.removeFinalizer(ctx, n, metav1.FinalizerDeleteDependents)
	case cycle:
		// Every object in the cycle waits for the next one: releasing our
		// owners lets one of them finish, and the rest follow.
		return c.unblockOwners(ctx, n)
	}
	return nil // dependents' deletions wake us again
}

// blockingLocked lists the dependents whose reference to uid blocks its
// deletion.
func (c *Collector) blockingLocked(uid types.UID) []types.UID {
	n := c.graph[uid]
	if n == nil {
		return nil // deleted since the worker looked
	}
	var out []types.UID
	for d := range n.dependents {
		dn := c.graph[d]
		if dn == nil {
			continue
		}
		if slices.ContainsFunc(dn.owners, func(o metav1.OwnerReference) bool { return o.UID == uid && blocks(o) }) {
			out = append(out, d)
		}
	}
	return out
}

// inCycleLocked reports whether uid can reach itself through blocking
// dependents that are all in foreground deletion: such a chain never ends
// on its own.
func (c *Collector) inCycleLocked(uid types.UID) bool {
	if n := c.graph[uid]; n == nil || !n.foreground() {
		return false
	}
	seen := map[types.UID]bool{}
	stack := []types.UID{uid}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range c.blockingLocked(cur) {
			if d == uid {
				return true
			}
			if !seen[d] && c.graph[d].foreground() {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}

func (c *Collector) anyForegroundDependent(n node) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range n.dependents {
		if dn := c.graph[d]; dn != nil && dn.foreground() {
			return true
		}
	}
	return false
}

// unblockOwners clears blockOwnerDeletion on all of n's owner references.
func (c *Collector) unblockOwners(ctx context.Context, n node) error {
	if !slices.ContainsFunc(n.owners, blocks) {
		return nil
	}
	owners := slices.Clone(n.owners)
	for i := range owners {
		if blocks(owners[i]) {
			owners[i].BlockOwnerDeletion = ptr.To(false)
		}
	}
	if err := c.patchOwners(ctx, n, owners); err != nil {
		return fmt.Errorf("unblock owners of %s/%s: %w", n.ref.namespace, n.ref.name, err)
	}
	return nil
}

func (c *Collector) deleteObject(ctx context.Context, n node, policy metav1.DeletionPropagation) error {
	err := c.meta.Resource(n.ref.gvr).Namespace(n.ref.namespace).Delete(ctx, n.ref.name, metav1.DeleteOptions{
		PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &n.ref.uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete %s/%s: %w", n.ref.namespace, n.ref.name, err)
	}
	return nil
}

// processOrphan releases an owner's dependents, then its orphan finalizer.
func (c *Collector) processOrphan(ctx context.Context, uid types.UID) error {
	n, ok := c.snapshot(uid)
	if !ok || n.virtual || !n.deleting || !slices.Contains(n.finalizers, metav1.FinalizerOrphanDependents) {
		return nil
	}
	for d := range n.dependents {
		dn, ok := c.snapshot(d)
		if !ok {
			continue
		}
		keep := slices.DeleteFunc(slices.Clone(dn.owners), func(o metav1.OwnerReference) bool { return o.UID == uid })
		if len(keep) == len(dn.owners) {
			continue // already released
		}
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
