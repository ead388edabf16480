package scheduler

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// which stays queued and is scheduled once the victims are gone.
func (s *Scheduler) preempt(ctx context.Context, pod *corev1.Pod, cand *candidate) {
	for _, v := range cand.victims {
		s.recorder.Eventf(v, corev1.EventTypeNormal, "Preempted", "Preempted by pod %s on node %s", pod.UID, cand.node)
		err := s.client.CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &v.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) {
			s.log.Warn("preemption: delete victim", "victim", v.Namespace+"/"+v.Name, "err", err)
		}
	}
	s.metrics.preemptions.Add(float64(len(cand.victims)))
}
