package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPreemptionMarksVictimDisruptionTarget follows the conformance spec
// "SchedulerPreemption ... pod disruption condition is added to the
// preempted pod": the victim (held by a finalizer) is deleted and carries
// DisruptionTarget=True, reason PreemptionByScheduler, with upstream's
// message.
func TestPreemptionMarksVictimDisruptionTarget(t *testing.T) {
	e := start(t)
	if _, err := e.client.SchedulingV1().PriorityClasses().Create(e.ctx, &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.node("n1", "1", nil)
	victim := pod("victim", "1", "")
	victim.Finalizers = []string{"example.com/test-finalizer"}
	e.pod(victim)
	e.placement("victim")
	urgent := pod("urgent", "1", "")
	urgent.Spec.PriorityClassName = "high"
	e.pod(urgent)

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		got, err := e.client.CoreV1().Pods("default").Get(e.ctx, "victim", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got.Status.Conditions {
			if c.Type != corev1.DisruptionTarget {
				continue
			}
			if c.Status != corev1.ConditionTrue || c.Reason != corev1.PodReasonPreemptionByScheduler ||
				c.Message != "default-scheduler: preempting to accommodate a higher priority pod" {
				t.Fatalf("condition = %+v", c)
			}
			if got.DeletionTimestamp == nil {
				continue // marked, not deleted yet
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the victim was never marked DisruptionTarget and deleted")
}
