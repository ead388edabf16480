package statefulset

import (
	"context"
	"log/slog"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// TestRecreatedPodKeepsRevisionBelowPartition is the conformance spec
// "should perform canary updates and phased rolling updates": a pod
// deleted below a rolling update's partition comes back at the current
// revision, one at or above it at the update revision.
func TestRecreatedPodKeepsRevisionBelowPartition(t *testing.T) {
	ctx := context.Background()
	template := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "ss"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
		}
	}
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ss", Namespace: "default", UID: "set-uid"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](3),
			Template: template("new"),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](2)}},
		},
		Status: appsv1.StatefulSetStatus{CurrentRevision: "old", UpdateRevision: "new"},
	}
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	revs := factory.Apps().V1().ControllerRevisions()
	for hash, image := range map[string]string{"old": "old", "new": "new"} {
		if err := controllerutil.EnsureRevision(ctx, client, revs.Lister(), set, gvk, template(image), hash); err != nil {
			t.Fatal(err)
		}
		rev, err := client.AppsV1().ControllerRevisions("default").Get(ctx, "ss-"+hash, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := revs.Informer().GetIndexer().Add(rev); err != nil {
			t.Fatal(err)
		}
	}
	c := New(client, factory, slog.New(slog.DiscardHandler))
	for ordinal, want := range map[int]string{0: "old", 1: "old", 2: "new"} {
		if err := c.createPod(ctx, set, "new", ordinal); err != nil {
			t.Fatal(err)
		}
		name := "ss-" + strconv.Itoa(ordinal)
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if img, rev := p.Spec.Containers[0].Image, p.Labels[RevisionLabel]; img != want || rev != want {
			t.Errorf("%s created with image %q at revision %q, want %q for both", name, img, rev, want)
		}
	}

	// Without a partition every recreated pod is at the update revision.
	set.Spec.UpdateStrategy.RollingUpdate.Partition = ptr.To[int32](0)
	if err := client.CoreV1().Pods("default").Delete(ctx, "ss-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.createPod(ctx, set, "new", 0); err != nil {
		t.Fatal(err)
	}
	if p, err := client.CoreV1().Pods("default").Get(ctx, "ss-0", metav1.GetOptions{}); err != nil || p.Spec.Containers[0].Image != "new" {
		t.Errorf("ss-0 without a partition: %v, image %q; want new", err, p.Spec.Containers[0].Image)
	}
}
