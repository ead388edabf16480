package garbagecollector

import (
	"io"
	"log/slog"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var configmaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func newTestCollector(t *testing.T) *Collector {
	t.Helper()
	c := New(nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { c.attemptToDelete.ShutDown(); c.attemptToOrphan.ShutDown() })
	return c
}

type objOpt func(*metav1.PartialObjectMetadata)

func ownedBy(owner string, block bool) objOpt {
	return func(o *metav1.PartialObjectMetadata) {
		o.OwnerReferences = append(o.OwnerReferences, metav1.OwnerReference{
			APIVersion: "v1", Kind: "ConfigMap", Name: owner, UID: types.UID(owner), BlockOwnerDeletion: ptr.To(block),
		})
	}
}

func deleting(finalizer string) objOpt {
	return func(o *metav1.PartialObjectMetadata) {
		o.DeletionTimestamp = &metav1.Time{}
		o.Finalizers = append(o.Finalizers, finalizer)
	}
}

// obj builds an object whose UID is its name, to keep graphs readable.
func obj(name string, opts ...objOpt) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)}}
	for _, f := range opts {
		f(o)
	}
	return o
}

func TestGraphLinksWhateverTheEventOrder(t *testing.T) {
	c := newTestCollector(t)
	// The dependent's informer speaks first: the owner must still learn
	// of it, or orphaning and foreground deletion would skip it.
	c.observe(configmaps, obj("dep", ownedBy("owner", true)))
	if n := c.graph["owner"]; n == nil || !n.virtual || !n.dependents["dep"] {
		t.Fatalf("owner placeholder: %+v", n)
	}
	c.observe(configmaps, obj("owner"))
	n := c.graph["owner"]
	if n.virtual || !n.dependents["dep"] || n.ref.gvr != configmaps {
		t.Fatalf("owner after its own event: %+v", n)
	}

	c.observe(configmaps, obj("dep"))
	if len(c.graph["owner"].dependents) != 0 {
		t.Fatalf("released dependent still linked: %v", c.graph["owner"].dependents)
	}

	// Placeholders go once nothing names them.
	c.observe(configmaps, obj("dep2", ownedBy("ghost", false)))
	c.forget(obj("dep2", ownedBy("ghost", false)))
	if _, ok := c.graph["ghost"]; ok {
		t.Fatal("placeholder for a vanished owner outlived its last dependent")
	}
	if _, exists, _ := c.ownerState(t.Context(), "default", metav1.OwnerReference{APIVersion: "v1", Kind: "Nope", UID: "ghost"}); exists {
		t.Fatal("an owner known only from references counted as existing")
	}
}

func TestLateDependentOfOrphaningOwnerIsReleased(t *testing.T) {
	c := newTestCollector(t)
	c.observe(configmaps, obj("owner", deleting(metav1.FinalizerOrphanDependents)))
	for c.attemptToOrphan.Len() > 0 {
		uid, _ := c.attemptToOrphan.Get()
		c.attemptToOrphan.Done(uid)
	}
	c.observe(configmaps, obj("late", ownedBy("owner", true)))
	if c.attemptToOrphan.Len() != 1 {
		t.Fatalf("orphan queue: %d items, want the owner queued again", c.attemptToOrphan.Len())
	}
}

func TestCycleDetection(t *testing.T) {
	fg := deleting(metav1.FinalizerDeleteDependents)
	for _, tc := range []struct {
		name  string
		objs  []*metav1.PartialObjectMetadata
		cycle map[types.UID]bool
	}{{
		name: "blocking ring, all waiting",
		objs: []*metav1.PartialObjectMetadata{
			obj("a", ownedBy("c", true), fg), obj("b", ownedBy("a", true), fg), obj("c", ownedBy("b", true), fg),
		},
		cycle: map[types.UID]bool{"a": true, "b": true, "c": true},
	}, {
		name: "ring with a non-blocking link",
		objs: []*metav1.PartialObjectMetadata{
			obj("a", ownedBy("c", true), fg), obj("b", ownedBy("a", false), fg), obj("c", ownedBy("b", true), fg),
		},
	}, {
		name: "ring with a member not yet waiting",
		objs: []*metav1.PartialObjectMetadata{
			obj("a", ownedBy("c", true), fg), obj("b", ownedBy("a", true)), obj("c", ownedBy("b", true), fg),
		},
	}, {
		name: "chain",
		objs: []*metav1.PartialObjectMetadata{
			obj("a", fg), obj("b", ownedBy("a", true), fg), obj("c", ownedBy("b", true), fg),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCollector(t)
			for _, o := range tc.objs {
				c.observe(configmaps, o)
			}
			for _, uid := range []types.UID{"a", "b", "c"} {
				if got := c.inCycleLocked(uid); got != tc.cycle[uid] {
					t.Errorf("inCycle(%s) = %v, want %v", uid, got, tc.cycle[uid])
				}
			}
		})
	}
}
