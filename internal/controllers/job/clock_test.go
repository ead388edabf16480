package job

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// The active deadline is measured on the controller's clock from the
// StartTime the first sync records.
func TestActiveDeadlineOnFakeClock(t *testing.T) {
	h := newHarness(t)
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h.c.Clock = clk
	j := testJob("deadline", 1, 1, false)
	j.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
	h.createJob(j)
	// sync also waits until the cache holds the status it wrote: the fake
	// clientset's resource versions alone do not show a stale cache.
	sync := func() *batchv1.Job {
		t.Helper()
		got := h.sync("deadline")
		h.waitFor("job status in cache", func() bool {
			cached, err := h.c.jobLister.Jobs("default").Get("deadline")
			return err == nil && equality.Semantic.DeepEqual(cached.Status, got.Status)
		})
		return got
	}

	got := sync()
	if got.Status.StartTime == nil || !got.Status.StartTime.Time.Equal(clk.Now()) {
		t.Fatalf("StartTime %v, want the fake clock's %v", got.Status.StartTime, clk.Now())
	}
	if ft := condition(got, batchv1.JobFailureTarget); ft != nil {
		t.Fatalf("FailureTarget set at start: %+v", ft)
	}

	clk.SetTime(clk.Now().Add(59 * time.Second))
	if ft := condition(sync(), batchv1.JobFailureTarget); ft != nil {
		t.Fatalf("FailureTarget set before the deadline: %+v", ft)
	}

	clk.SetTime(clk.Now().Add(time.Second))
	got = sync()
	ft := condition(got, batchv1.JobFailureTarget)
	if ft == nil || ft.Reason != batchv1.JobReasonDeadlineExceeded {
		t.Fatalf("FailureTarget %+v after the deadline, want reason %s", ft, batchv1.JobReasonDeadlineExceeded)
	}
	if !ft.LastTransitionTime.Time.Equal(clk.Now()) {
		t.Fatalf("condition time %v, want the fake clock's %v", ft.LastTransitionTime, clk.Now())
	}
}

// A failed pod is replaced only after the backoff, counted on the
// controller's clock from the pod's finish time.
func TestPodBackoffOnFakeClock(t *testing.T) {
	h := newHarness(t)
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h.c.Clock = clk
	j := testJob("retry", 1, 1, false)
	h.createJob(j)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: "retry-a", Namespace: "default", UID: "pod-retry-a", Labels: j.Spec.Template.Labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID, Controller: ptr.To(true)}},
	}, Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: metav1.NewTime(clk.Now())}},
	}}}}
	if _, err := h.client.CoreV1().Pods("default").Create(h.ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("pod in cache", func() bool { _, err := h.c.podLister.Pods("default").Get(p.Name); return err == nil })
	active := func() int {
		pods, err := h.client.CoreV1().Pods("default").List(h.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodFailed {
				n++
			}
		}
		return n
	}

	clk.SetTime(clk.Now().Add(podBackoffBase - time.Second))
	h.sync("retry")
	if n := active(); n != 0 {
		t.Fatalf("%d replacement pods inside the backoff, want 0", n)
	}
	clk.SetTime(clk.Now().Add(2 * time.Second))
	h.sync("retry")
	if n := active(); n != 1 {
		t.Fatalf("%d replacement pods after the backoff, want 1", n)
	}
}
