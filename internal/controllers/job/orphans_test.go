package job

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// queued drains the controller's queue for up to a second and reports
// whether key was in it.
func (h *harness) queued(key string) bool {
	h.t.Helper()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if h.c.queue.Len() == 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		got, _ := h.c.queue.Get()
		h.c.queue.Done(got)
		if got == key {
			return true
		}
	}
	return false
}

// TestOrphanPodQueuesMatchingJob is the conformance spec "should adopt
// matching orphans": a pod whose owner reference was removed must bring
// its Job back to adopt it, and the Job it left must hear of it.
func TestOrphanPodQueuesMatchingJob(t *testing.T) {
	h := newHarness(t)
	j := testJob("adopter", 2, 2, false)
	h.createJob(j)
	other := testJob("other", 1, 1, false)
	h.createJob(other)
	h.pod(j, "p1", -1, corev1.PodRunning, false)
	for h.c.queue.Len() > 0 { // the creations' own events
		k, _ := h.c.queue.Get()
		h.c.queue.Done(k)
	}

	p, err := h.client.CoreV1().Pods("default").Get(h.ctx, "p1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.OwnerReferences = nil
	if _, err := h.client.CoreV1().Pods("default").Update(h.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !h.queued("default/adopter") {
		t.Fatal("the Job whose selector matches the orphan was not queued")
	}
	if err := h.c.sync(h.ctx, "default/adopter"); err != nil {
		t.Fatal(err)
	}
	p, err = h.client.CoreV1().Pods("default").Get(h.ctx, "p1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != j.UID {
		t.Fatalf("orphan not readopted: %v", p.OwnerReferences)
	}
	if h.queued("default/other") {
		t.Error("a Job whose selector does not match the orphan was queued")
	}

	// A pod created without an owner is adopted the same way.
	stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: "default", UID: "stray", Labels: j.Spec.Template.Labels}}
	if _, err := h.client.CoreV1().Pods("default").Create(h.ctx, stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if !h.queued("default/adopter") {
		t.Fatal("a new orphan did not queue the Job whose selector matches it")
	}

	// A pod another controller owns is not the Jobs' to adopt, even when
	// their selector matches it.
	owned := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "owned", Namespace: "default", UID: "owned", Labels: j.Spec.Template.Labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs", Controller: ptr.To(true)}}}}
	if _, err := h.client.CoreV1().Pods("default").Create(h.ctx, owned, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if h.queued("default/adopter") {
		t.Error("a pod controlled by a ReplicaSet queued a Job")
	}
}
