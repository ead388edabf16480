package manager

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func startManager(t *testing.T) (kubernetes.Interface, context.Context) {
	t.Helper()
	ts := testserver.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = Run(ctx, Config{RESTConfig: ts.Config, Local: ts.API}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ts.Client, ctx
}

// owned creates an owner ConfigMap and n dependents pointing at it.
func owned(t *testing.T, c kubernetes.Interface, ctx context.Context, owner string, n int) *corev1.ConfigMap {
	t.Helper()
	o, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: owner}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	block := true
	for i := 0; i < n; i++ {
		_, err := c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: owner + "-dep-" + string(rune('a'+i)),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "ConfigMap", Name: owner, UID: o.UID, BlockOwnerDeletion: &block,
			}},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func dependents(t *testing.T, c kubernetes.Interface, ctx context.Context, owner string) []corev1.Secret {
	t.Helper()
	l, err := c.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Secret
	for _, s := range l.Items {
		if len(s.Name) > len(owner) && s.Name[:len(owner)+1] == owner+"-" {
			out = append(out, s)
		}
	}
	return out
}

func TestCascadingDeletion(t *testing.T) {
	c, ctx := startManager(t)
	cms := c.CoreV1().ConfigMaps("default")

	owned(t, c, ctx, "bg", 2)
	bg := metav1.DeletePropagationBackground
	if err := cms.Delete(ctx, "bg", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "background: dependents collected", func() bool { return len(dependents(t, c, ctx, "bg")) == 0 })

	owned(t, c, ctx, "fg", 2)
	fg := metav1.DeletePropagationForeground
	if err := cms.Delete(ctx, "fg", metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil {
		t.Fatal(err)
	}
	o, err := cms.Get(ctx, "fg", metav1.GetOptions{})
	if err == nil && (o.DeletionTimestamp == nil || len(o.Finalizers) == 0 || o.Finalizers[0] != metav1.FinalizerDeleteDependents) {
		t.Fatalf("foreground owner: %+v", o.ObjectMeta)
	}
	eventually(t, "foreground: owner gone after its dependents", func() bool {
		_, err := cms.Get(ctx, "fg", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if d := dependents(t, c, ctx, "fg"); len(d) != 0 {
		t.Fatalf("foreground owner deleted before %d dependents", len(d))
	}

	owned(t, c, ctx, "orph", 2)
	orphan := metav1.DeletePropagationOrphan
	if err := cms.Delete(ctx, "orph", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "orphan: owner gone", func() bool {
		_, err := cms.Get(ctx, "orph", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	eventually(t, "orphan: dependents released", func() bool {
		d := dependents(t, c, ctx, "orph")
		return len(d) == 2 && len(d[0].OwnerReferences) == 0 && len(d[1].OwnerReferences) == 0
	})
}
