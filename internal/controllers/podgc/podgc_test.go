package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func TestCollectsOrphanedAndSurplusPods(t *testing.T) {
	ts := testserver.Start(t)
	c := ts.Client
	ctx, cancel := context.WithCancel(context.Background())
	f := informers.NewSharedInformerFactory(c, 0)
	ctrl := New(c, f, slog.New(slog.DiscardHandler))
	ctrl.threshold = 2
	defer func() { cancel(); f.Shutdown() }()

	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "alive"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mk := func(name, node string, phase corev1.PodPhase) {
		p, err := c.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "i"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if phase != "" {
			p.Status.Phase = phase
			if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("on-alive", "alive", "")
	mk("on-gone", "gone", "")
	for i := 0; i < 4; i++ {
		mk(fmt.Sprintf("done-%d", i), "alive", corev1.PodSucceeded)
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	ctrl.collect(ctx)
	exists := func(name string) bool {
		_, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	if exists("on-gone") || !exists("on-alive") {
		t.Fatal("pod of a missing node kept, or a healthy pod deleted")
	}
	if exists("done-0") || exists("done-1") || !exists("done-2") || !exists("done-3") {
		t.Fatal("surplus terminated pods: want the two oldest deleted")
	}
}
