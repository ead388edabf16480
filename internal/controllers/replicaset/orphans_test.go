package replicaset

import (
	"log/slog"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

// TestOnlyOrphansQueueMatchingSets: an orphan queues the sets that select
// it; a pod another controller owns (a Job's, say) queues none, so its
// every update costs no listing.
func TestOnlyOrphansQueueMatchingSets(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	t.Cleanup(c.queue.ShutDown)
	controllertest.Seed(t, factory, rs)

	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "web"}}}
	c.enqueueMatching(orphan)
	if c.queue.Len() != 1 {
		t.Fatalf("an orphan queued %d sets, want 1", c.queue.Len())
	}
	key, _ := c.queue.Get()
	c.queue.Done(key)

	owned := orphan.DeepCopy()
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "j", Controller: ptr.To(true)}}
	c.enqueueMatching(owned)
	if c.queue.Len() != 0 {
		t.Errorf("a Job's pod queued %d sets, want none", c.queue.Len())
	}
}
