package manager

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestOrphanReleasesBeforeFinalizer checks that orphaning strips the
// dependents' references to the owner before the orphan finalizer goes:
// a second finalizer keeps the owner around to look at that moment.
func TestOrphanReleasesBeforeFinalizer(t *testing.T) {
	c, ctx := startManager(t)
	cms := c.CoreV1().ConfigMaps("default")
	const hold = "example.com/hold"
	o, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "keep", Finalizers: []string{hold}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := mkCM(t, c, ctx, "other")
	ref := func(cm *corev1.ConfigMap) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID, BlockOwnerDeletion: ptr.To(true)}
	}
	for _, name := range []string{"keep-dep-a", "keep-dep-b", "keep-dep-c"} {
		_, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: name, OwnerReferences: []metav1.OwnerReference{ref(o), ref(other)},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.Delete(ctx, "keep", metav1.DeleteOptions{OrphanDependents: ptr.To(true)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "orphan finalizer removed", func() bool {
		cm, err := cms.Get(ctx, "keep", metav1.GetOptions{})
		return err == nil && !slices.Contains(cm.Finalizers, metav1.FinalizerOrphanDependents)
	})
	deps := dependents(t, c, ctx, "keep")
	if len(deps) != 3 {
		t.Fatalf("orphaned dependents: got %d, want 3", len(deps))
	}
	for _, d := range deps {
		if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].UID != other.UID {
			t.Errorf("%s still has owners %+v after the orphan finalizer went; want only %q", d.Name, d.OwnerReferences, other.Name)
		}
	}
	// Release the owner; the orphans must survive it.
	cm, err := cms.Get(ctx, "keep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Finalizers = nil
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "owner gone", func() bool {
		_, err := cms.Get(ctx, "keep", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if d := dependents(t, c, ctx, "keep"); len(d) != 3 {
		t.Fatalf("orphans collected with their former owner: %d left", len(d))
	}
}

// TestForegroundDependencyCycle covers owner cycles under foreground
// deletion, which must all finish rather than wait on each other forever.
func TestForegroundDependencyCycle(t *testing.T) {
	c, ctx := startManager(t)
	fg := metav1.DeletePropagationForeground

	t.Run("ring of three, one deleted", func(t *testing.T) {
		// Upstream's conformance case: 1 owned by 3, 2 by 1, 3 by 2, all
		// blocking; deleting 1 in the foreground must take all three.
		p1, p2, p3 := mkCM(t, c, ctx, "ring-1"), mkCM(t, c, ctx, "ring-2"), mkCM(t, c, ctx, "ring-3")
		setOwner(t, c, ctx, p2, p1, true)
		setOwner(t, c, ctx, p3, p2, true)
		setOwner(t, c, ctx, p1, p3, true)
		del(t, c, ctx, p1, fg)
		eventually(t, "ring gone", func() bool { return gone(t, c, ctx, "ring-1", "ring-2", "ring-3") })
	})

	t.Run("pair, one blocking, both deleted", func(t *testing.T) {
		a, b := mkCM(t, c, ctx, "pair-a"), mkCM(t, c, ctx, "pair-b")
		setOwner(t, c, ctx, a, b, true)
		setOwner(t, c, ctx, b, a, false)
		del(t, c, ctx, a, fg)
		del(t, c, ctx, b, fg)
		eventually(t, "pair gone", func() bool { return gone(t, c, ctx, "pair-a", "pair-b") })
	})

	t.Run("pair, both blocking, both deleted", func(t *testing.T) {
		a, b := mkCM(t, c, ctx, "mutual-a"), mkCM(t, c, ctx, "mutual-b")
		setOwner(t, c, ctx, a, b, true)
		setOwner(t, c, ctx, b, a, true)
		del(t, c, ctx, a, fg)
		del(t, c, ctx, b, fg)
		eventually(t, "mutual pair gone", func() bool { return gone(t, c, ctx, "mutual-a", "mutual-b") })
	})

	t.Run("chain keeps foreground order", func(t *testing.T) {
		// No cycle: the top must outlive the middle, which outlives the leaf
		// held by a finalizer; cycle handling must not shortcut that.
		top, mid := mkCM(t, c, ctx, "chain-top"), mkCM(t, c, ctx, "chain-mid")
		leaf, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: "chain-leaf", Finalizers: []string{"example.com/hold"},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		setOwner(t, c, ctx, mid, top, true)
		setOwner(t, c, ctx, leaf, mid, true)
		del(t, c, ctx, top, fg)
		eventually(t, "leaf deleting", func() bool {
			l, err := c.CoreV1().ConfigMaps("default").Get(ctx, "chain-leaf", metav1.GetOptions{})
			return err == nil && l.DeletionTimestamp != nil
		})
		if gone(t, c, ctx, "chain-top") || gone(t, c, ctx, "chain-mid") {
			t.Fatal("foreground owners finished before their blocking dependent")
		}
		l, err := c.CoreV1().ConfigMaps("default").Get(ctx, "chain-leaf", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Finalizers = nil
		if _, err := c.CoreV1().ConfigMaps("default").Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "chain gone", func() bool { return gone(t, c, ctx, "chain-top", "chain-mid", "chain-leaf") })
	})
}

func mkCM(t *testing.T, c kubernetes.Interface, ctx context.Context, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// setOwner makes owner the sole owner of dep.
func setOwner(t *testing.T, c kubernetes.Interface, ctx context.Context, dep, owner *corev1.ConfigMap, block bool) {
	t.Helper()
	cms := c.CoreV1().ConfigMaps("default")
	cur, err := cms.Get(ctx, dep.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID, BlockOwnerDeletion: ptr.To(block),
	}}
	if _, err := cms.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func del(t *testing.T, c kubernetes.Interface, ctx context.Context, cm *corev1.ConfigMap, policy metav1.DeletionPropagation) {
	t.Helper()
	err := c.CoreV1().ConfigMaps("default").Delete(ctx, cm.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy, Preconditions: metav1.NewUIDPreconditions(string(cm.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}

func gone(t *testing.T, c kubernetes.Interface, ctx context.Context, names ...string) bool {
	t.Helper()
	for _, n := range names {
		_, err := c.CoreV1().ConfigMaps("default").Get(ctx, n, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false
		}
	}
	return true
}
