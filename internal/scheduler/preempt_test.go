package scheduler

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
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

// TestNominatedPodHoldsItsRoom: a pod that preempted on a node holds the
// room it freed against pods of lower priority (the conformance spec
// "PreemptionExecutionPath": the victims' ReplicaSets recreate them at
// once), not against itself or pods that outrank it, and lets go once it
// is placed or deleted.
func TestNominatedPodHoldsItsRoom(t *testing.T) {
	c := newCache(clock.RealClock{})
	c.upsertNode(node("n1", "1", "4Gi", nil))
	withPriority := func(p *corev1.Pod, prio int32) *corev1.Pod {
		p.UID = types.UID(p.Name)
		p.Spec.Priority = &prio
		return p
	}
	urgent := withPriority(pod("urgent", "1", ""), 1000)
	urgent.Status.NominatedNodeName = "n1"
	c.setNominated(urgent)
	fits := func(p *corev1.Pod) bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		ni := c.withNominatedLocked(p, c.nodes["n1"])
		return ni.requested.milliCPU+p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue() <= ni.allocatable.milliCPU
	}
	if fits(withPriority(pod("replacement", "1", ""), 1)) {
		t.Error("a lower-priority pod fits into the room a nominated pod freed")
	}
	if !fits(urgent) {
		t.Error("the nominated pod does not fit into its own room")
	}
	if fits(withPriority(pod("peer", "1", ""), 1000)) {
		t.Error("a pod of equal priority ignores the nominated pod, as upstream it must not")
	}

	placed := urgent.DeepCopy()
	placed.Spec.NodeName = "n1"
	c.setNominated(placed)
	if !fits(withPriority(pod("replacement", "1", ""), 1)) {
		t.Error("the nomination outlived the pod's placement")
	}
	c.setNominated(urgent)
	c.forgetNominated(urgent)
	if len(c.nominated) != 0 || len(c.nominatedNode) != 0 {
		t.Errorf("nominations left after the pod was deleted: %v", c.nominatedNode)
	}
}
