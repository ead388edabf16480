package scheduler

import (
	"context"
	"encoding/json"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// candidate is a node where evicting victims lets the pod fit.
type candidate struct {
	node    string
	victims []*corev1.Pod
}

// findVictims looks, on every node, for the smallest set of lower-priority
// pods whose eviction lets the pod fit, and picks the node that costs the
// least: fewest victims, then the lowest highest-victim priority.
func (s *Scheduler) findVictims(state *cycleState) *candidate {
	pod := state.pod
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever {
		return nil
	}
	prio := priorityOf(pod)
	c := s.cache
	c.mu.RLock()
	defer c.mu.RUnlock()
	var best *candidate
	for _, name := range c.order {
		ni := c.nodes[name]
		var lower []*podInfo
		for _, pi := range ni.pods {
			if priorityOf(pi.pod) < prio && pi.pod.DeletionTimestamp == nil {
				lower = append(lower, pi)
			}
		}
		if len(lower) == 0 {
			continue
		}
		// Remove every lower-priority pod; if the pod still does not fit,
		// preemption on this node cannot help.
		trial := newNodeInfo(ni.node)
		victim := map[*podInfo]bool{}
		for _, pi := range lower {
			victim[pi] = true
		}
		for _, pi := range ni.pods {
			if !victim[pi] {
				trial.addPod(pi)
			}
		}
		// Room held for pods that preempted here before, of no lower
		// priority, is not this pod's to take.
		for uid, pi := range c.nominated[name] {
			if uid != pod.UID && priorityOf(pi.pod) >= prio {
				trial.addPod(pi)
			}
		}
		if s.filter(state, trial) != nil {
			continue
		}
		// Reprieve: give back as many victims as possible, most important
		// first, while the pod still fits.
		sort.Slice(lower, func(i, j int) bool { return priorityOf(lower[i].pod) > priorityOf(lower[j].pod) })
		var victims []*corev1.Pod
		for _, pi := range lower {
			trial.addPod(pi)
			if s.filter(state, trial) != nil {
				trial.removePod(pi.pod.UID)
				victims = append(victims, pi.pod)
			}
		}
		cand := &candidate{node: name, victims: victims}
		if best == nil || better(cand, best) {
			best = cand
		}
	}
	return best
}

func better(a, b *candidate) bool {
	if len(a.victims) != len(b.victims) {
		return len(a.victims) < len(b.victims)
	}
	return highestPriority(a.victims) < highestPriority(b.victims)
}

func highestPriority(pods []*corev1.Pod) int32 {
	var hi int32 = -1 << 31
	for _, p := range pods {
		hi = max(hi, priorityOf(p))
	}
	return hi
}

// preempt evicts the victims; the caller nominates the node for the pod,
// which stays queued and is scheduled once the victims are gone. As
// upstream, each victim is first marked with the DisruptionTarget
// condition, so its controllers (a Job's pod failure policy) can tell a
// preemption from a failure.
func (s *Scheduler) preempt(ctx context.Context, pod *corev1.Pod, cand *candidate) {
	evicted := 0
	for _, v := range cand.victims {
		if err := s.markDisruptionTarget(ctx, v); err != nil {
			if !apierrors.IsNotFound(err) {
				s.log.Warn("preemption: add DisruptionTarget condition", "victim", v.Namespace+"/"+v.Name, "err", err)
			}
			continue
		}
		err := s.client.CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &v.UID},
		})
		if err != nil {
			if !apierrors.IsNotFound(err) {
				s.log.Warn("preemption: delete victim", "victim", v.Namespace+"/"+v.Name, "err", err)
			}
			continue
		}
		evicted++
		s.recorder.Eventf(v, corev1.EventTypeNormal, "Preempted", "Preempted by pod %s on node %s", pod.UID, cand.node)
	}
	s.metrics.preemptions.Add(float64(evicted))
}

// markDisruptionTarget sets the victim's DisruptionTarget condition with a
// strategic merge patch of its status (conditions merge by type), unless
// it is already there.
func (s *Scheduler) markDisruptionTarget(ctx context.Context, victim *corev1.Pod) error {
	cond := corev1.PodCondition{
		Type:               corev1.DisruptionTarget,
		ObservedGeneration: victim.Generation,
		Status:             corev1.ConditionTrue,
		Reason:             corev1.PodReasonPreemptionByScheduler,
		Message:            SchedulerName + ": preempting to accommodate a higher priority pod",
		LastTransitionTime: metav1.NewTime(s.clock.Now()),
	}
	for _, c := range victim.Status.Conditions {
		if c.Type != cond.Type {
			continue
		}
		if c.Status == cond.Status {
			if c.Reason == cond.Reason && c.Message == cond.Message && c.ObservedGeneration == cond.ObservedGeneration {
				return nil
			}
			cond.LastTransitionTime = c.LastTransitionTime
		}
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{cond}}})
	if err != nil {
		return err
	}
	return retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, func() error {
		_, err := s.client.CoreV1().Pods(victim.Namespace).Patch(ctx, victim.Name, types.StrategicMergePatchType, patch,
			metav1.PatchOptions{}, "status")
		return err
	})
}
