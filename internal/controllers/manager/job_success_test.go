package manager

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// A success policy ends an Indexed job once index 0 succeeds, while the
// other indexes are still pending: SuccessCriteriaMet, then Complete.
func TestJobSuccessPolicy(t *testing.T) {
	c, ctx := startManager(t)
	jobs := c.BatchV1().Jobs("default")
	j := jobObj("sp", 5, 2, 6)
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0")}}}
	if _, err := jobs.Create(ctx, j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Play the kubelet for index 0 only.
	go func() {
		for ctx.Err() == nil {
			pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=sp"})
			if err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "0" && p.Status.Phase == corev1.PodPending {
						p.Status.Phase = corev1.PodSucceeded
						_, _ = c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var got *batchv1.Job
	eventually(t, "job complete", func() bool {
		var err error
		got, err = jobs.Get(ctx, "sp", metav1.GetOptions{})
		return err == nil && hasCondition(got, batchv1.JobComplete, batchv1.JobReasonSuccessPolicy)
	})
	if !hasCondition(got, batchv1.JobSuccessCriteriaMet, batchv1.JobReasonSuccessPolicy) || got.Spec.SuccessPolicy == nil {
		t.Fatalf("conditions %+v", got.Status.Conditions)
	}
	st := got.Status
	if st.CompletedIndexes != "0" || st.Succeeded != 1 || st.Active != 0 || st.Failed != 0 ||
		st.Terminating == nil || *st.Terminating != 0 || st.Ready == nil || *st.Ready != 0 || st.CompletionTime == nil {
		t.Fatalf("final status %+v", st)
	}
}
