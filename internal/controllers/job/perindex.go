package job

import (
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// indexFailureCountAnnotation is how many pods of its index failed before
// a pod was created; with backoffLimitPerIndex every pod carries it, so the
// count survives the deletion of failed pods, as upstream.
const indexFailureCountAnnotation = batchv1.JobIndexFailureCountAnnotation

// indexFailures is the per-index failure state of an Indexed job with
// backoffLimitPerIndex.
type indexFailures struct {
	count  map[int]int32     // failures of each index so far
	last   map[int]time.Time // when the index's last pod failed
	failed map[int]bool      // indexes out of retries or failed by a FailIndex rule
}

// perIndexFailures counts each index's failures (the failed pod's
// annotation plus itself) and marks failed the indexes past the limit or
// matching a FailIndex rule; indexes already recorded in status stay failed.
func perIndexFailures(job *batchv1.Job, failed []*corev1.Pod, recorded string, completions int) *indexFailures {
	fi := &indexFailures{count: map[int]int32{}, last: map[int]time.Time{}, failed: parseIndexes(recorded, completions)}
	limit := *job.Spec.BackoffLimitPerIndex
	for _, p := range failed {
		i, ok := completionIndex(p)
		if !ok || i >= completions {
			continue
		}
		prior, _ := strconv.Atoi(p.Annotations[indexFailureCountAnnotation])
		n := int32(prior) + 1
		fi.count[i] = max(fi.count[i], n)
		if t := lastFailure([]*corev1.Pod{p}); t.After(fi.last[i]) {
			fi.last[i] = t
		}
		if n > limit {
			fi.failed[i] = true
		}
		if r := matchRule(job, p); r != nil && r.Action == batchv1.PodFailurePolicyActionFailIndex {
			fi.failed[i] = true
		}
	}
	return fi
}

// retryIn is how long index i waits before its next pod: the job backoff
// (10 s doubling) over the index's own failures.
func (fi *indexFailures) retryIn(i int, now time.Time) time.Duration {
	return backoffDelay(int(fi.count[i]), fi.last[i], now)
}

// perIndexOutcome returns the failure reason and message that end an
// Indexed job with backoffLimitPerIndex, or "" while it goes on: too many
// failed indexes, or every index finished with some failed.
func perIndexOutcome(job *batchv1.Job, fi *indexFailures, done map[int]bool, completions int) (reason, msg string) {
	failed := 0
	for i := range fi.failed {
		if !done[i] {
			failed++
		}
	}
	switch {
	case job.Spec.MaxFailedIndexes != nil && failed > int(*job.Spec.MaxFailedIndexes):
		return batchv1.JobReasonMaxFailedIndexesExceeded, "Job has exceeded the specified maximal number of failed indexes"
	case failed > 0 && failed+len(done) >= completions:
		return batchv1.JobReasonFailedIndexes, "Job has failed indexes"
	}
	return "", ""
}
