package job

import (
	"math"
	"strconv"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

func perIndexJob(name string, completions, parallelism, limitPerIndex int32) *batchv1.Job {
	j := testJob(name, completions, parallelism, true)
	j.Spec.BackoffLimit = ptr.To[int32](math.MaxInt32) // upstream's default with backoffLimitPerIndex
	j.Spec.BackoffLimitPerIndex = ptr.To(limitPerIndex)
	return j
}

// failCreatedPod marks failed the pod the controller created for index i
// and returns its failure-count annotation.
func (h *harness) failCreatedPod(i int) string {
	h.t.Helper()
	var created *corev1.Pod
	h.waitFor("pod for index "+strconv.Itoa(i), func() bool {
		pods, _ := h.c.podLister.List(labels.Everything())
		for _, p := range pods {
			if idx, ok := completionIndex(p); ok && idx == i && p.Status.Phase == "" {
				created = p
				return true
			}
		}
		return false
	})
	p := created.DeepCopy()
	p.Status.Phase = corev1.PodFailed
	if _, err := h.client.CoreV1().Pods("default").UpdateStatus(h.ctx, p, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.waitFor("failed pod in cache", func() bool {
		got, err := h.c.podLister.Pods("default").Get(p.Name)
		return err == nil && got.Status.Phase == corev1.PodFailed
	})
	return p.Annotations[indexFailureCountAnnotation]
}

// As the conformance spec "should execute all indexes despite some failing
// when using backoffLimitPerIndex": odd indexes fail twice (limit 1), even
// ones succeed; the job fails with FailedIndexes "1,3" after running every
// index.
func TestBackoffLimitPerIndexRunsAllIndexes(t *testing.T) {
	h := newHarness(t)
	j := perIndexJob("odd", 4, 2, 1)
	h.createJob(j)
	h.pod(j, "odd-0", 0, corev1.PodSucceeded, false)
	h.pod(j, "odd-1", 1, corev1.PodFailed, false)
	h.pod(j, "odd-2", 2, corev1.PodSucceeded, false)
	h.pod(j, "odd-3", 3, corev1.PodFailed, false)

	got := h.sync("odd")
	if got.Status.FailedIndexes == nil || *got.Status.FailedIndexes != "" || condition(got, batchv1.JobFailureTarget) != nil {
		t.Fatalf("after one failure per odd index: failedIndexes %v, conditions %v", got.Status.FailedIndexes, conditionTypes(got))
	}
	for _, i := range []int{1, 3} {
		if n := h.failCreatedPod(i); n != "1" {
			t.Errorf("retry of index %d has failure count %q, want 1", i, n)
		}
	}
	got = h.sync("odd")
	ft, failed := condition(got, batchv1.JobFailureTarget), condition(got, batchv1.JobFailed)
	if ft == nil || failed == nil || failed.Reason != batchv1.JobReasonFailedIndexes || failed.Message != "Job has failed indexes" {
		t.Fatalf("conditions %+v, want FailureTarget and Failed with FailedIndexes", got.Status.Conditions)
	}
	if ptrString(got.Status.FailedIndexes) != "1,3" || got.Status.CompletedIndexes != "0,2" || got.Status.Failed != 4 || got.Status.Succeeded != 2 {
		t.Fatalf("status failedIndexes=%q completed=%q failed=%d succeeded=%d, want 1,3 / 0,2 / 4 / 2",
			ptrString(got.Status.FailedIndexes), got.Status.CompletedIndexes, got.Status.Failed, got.Status.Succeeded)
	}
}

// As "should terminate job execution when the number of failed indexes
// exceeds maxFailedIndexes": the first failure ends the job.
func TestMaxFailedIndexesExceeded(t *testing.T) {
	h := newHarness(t)
	j := perIndexJob("max", 4, 1, 0)
	j.Spec.MaxFailedIndexes = ptr.To[int32](0)
	h.createJob(j)
	h.pod(j, "max-0", 0, corev1.PodFailed, false)
	got := h.sync("max")
	if f := condition(got, batchv1.JobFailed); f == nil || f.Reason != batchv1.JobReasonMaxFailedIndexesExceeded ||
		f.Message != "Job has exceeded the specified maximal number of failed indexes" {
		t.Fatalf("Failed condition %+v", f)
	}
	if ptrString(got.Status.FailedIndexes) != "0" || got.Status.Failed != 1 {
		t.Fatalf("failedIndexes %q failed %d, want 0 and 1", ptrString(got.Status.FailedIndexes), got.Status.Failed)
	}
	if pods, _ := h.client.CoreV1().Pods("default").List(h.ctx, metav1.ListOptions{}); len(pods.Items) != 1 {
		t.Fatalf("%d pods, want no pod created after the failure", len(pods.Items))
	}
}

// As "should mark indexes as failed when the FailIndex action is matched in
// podFailurePolicy": a matching failure fails its index at once, without
// using up its retries.
func TestFailIndexAction(t *testing.T) {
	h := newHarness(t)
	j := perIndexJob("fi", 2, 2, 1)
	j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:      batchv1.PodFailurePolicyActionFailIndex,
		OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{1}},
	}}}
	h.createJob(j)
	h.pod(j, "fi-0", 0, corev1.PodSucceeded, false)
	h.pod(j, "fi-1", 1, corev1.PodFailed, false)
	p, _ := h.client.CoreV1().Pods("default").Get(h.ctx, "fi-1", metav1.GetOptions{})
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}}
	if _, err := h.client.CoreV1().Pods("default").UpdateStatus(h.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("exit code in cache", func() bool {
		got, _ := h.c.podLister.Pods("default").Get("fi-1")
		return got != nil && len(got.Status.ContainerStatuses) == 1
	})
	got := h.sync("fi")
	if f := condition(got, batchv1.JobFailed); f == nil || f.Reason != batchv1.JobReasonFailedIndexes {
		t.Fatalf("Failed condition %+v", f)
	}
	if ptrString(got.Status.FailedIndexes) != "1" || got.Status.CompletedIndexes != "0" || got.Status.Failed != 1 || got.Status.Succeeded != 1 {
		t.Fatalf("status %+v", got.Status)
	}
}
