package manager

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// finishPods plays the kubelet for jobs: every pod of the job ends with
// the given phase.
func finishPods(ctx context.Context, c kubernetes.Interface, job string, phase corev1.PodPhase) {
	go func() {
		for ctx.Err() == nil {
			pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
			if err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					if p.Status.Phase == corev1.PodPending && p.DeletionTimestamp == nil {
						p.Status.Phase = phase
						code := int32(0)
						if phase == corev1.PodFailed {
							code = 1
						}
						p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{
							Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.Now()}}}}
						_, _ = c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

func jobObj(name string, completions, parallelism, backoff int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			Completions: &completions, Parallelism: &parallelism, BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
			}},
		},
	}
}

func hasCondition(j *batchv1.Job, t batchv1.JobConditionType, reason string) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue && (reason == "" || c.Reason == reason) {
			return true
		}
	}
	return false
}

func TestJobCompletesAndFails(t *testing.T) {
	c, ctx := startManager(t)
	jobs := c.BatchV1().Jobs("default")

	finishPods(ctx, c, "ok", corev1.PodSucceeded)
	if _, err := jobs.Create(ctx, jobObj("ok", 3, 2, 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	maxActive := int32(0)
	eventually(t, "job complete", func() bool {
		j, err := jobs.Get(ctx, "ok", metav1.GetOptions{})
		if err != nil {
			return false
		}
		maxActive = max(maxActive, j.Status.Active)
		return hasCondition(j, batchv1.JobComplete, "") && j.Status.Succeeded == 3 && j.Status.CompletionTime != nil
	})
	if maxActive > 2 {
		t.Fatalf("%d pods ran at once with parallelism 2", maxActive)
	}

	finishPods(ctx, c, "bad", corev1.PodFailed)
	if _, err := jobs.Create(ctx, jobObj("bad", 1, 1, 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "job failed", func() bool {
		j, err := jobs.Get(ctx, "bad", metav1.GetOptions{})
		return err == nil && hasCondition(j, batchv1.JobFailed, "BackoffLimitExceeded") && j.Status.Failed == 1
	})

	// Indexed: one pod per index, with the index in annotation and env.
	idx := jobObj("idx", 3, 3, 6)
	mode := batchv1.IndexedCompletion
	idx.Spec.CompletionMode = &mode
	ttl := int32(0)
	idx.Spec.TTLSecondsAfterFinished = &ttl
	if _, err := jobs.Create(ctx, idx, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "indexed pods", func() bool {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=idx"})
		if err != nil || len(pods.Items) != 3 {
			return false
		}
		seen := map[string]bool{}
		for _, p := range pods.Items {
			i := p.Annotations[batchv1.JobCompletionIndexAnnotation]
			env := p.Spec.Containers[0].Env
			if len(env) == 0 || env[len(env)-1].Name != "JOB_COMPLETION_INDEX" || env[len(env)-1].Value != i {
				return false
			}
			seen[i] = true
		}
		return seen["0"] && seen["1"] && seen["2"]
	})
	finishPods(ctx, c, "idx", corev1.PodSucceeded)
	// ttlSecondsAfterFinished: 0 removes the job once it completes.
	eventually(t, "finished job removed", func() bool {
		_, err := jobs.Get(ctx, "idx", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
