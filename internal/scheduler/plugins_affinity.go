package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// nodeAffinity filters on nodeSelector and required node affinity, and
// scores preferred node affinity.
type nodeAffinity struct{}

func (nodeAffinity) Name() string  { return "NodeAffinity" }
func (nodeAffinity) Weight() int64 { return 2 }

func (nodeAffinity) Filter(s *cycleState, ni *nodeInfo) []string {
	if s.nodeAffinity != nil && !s.nodeAffinity.Matches(ni.node) {
		return []string{"node(s) didn't match Pod's node affinity/selector"}
	}
	return nil
}

func (nodeAffinity) Score(s *cycleState, ni *nodeInfo) int64 {
	var sum int64
	for i := range s.preferred {
		if s.preferred[i].Term.Matches(ni.node) {
			sum += s.preferred[i].Weight
		}
	}
	return sum
}

func (nodeAffinity) Normalize(scores []int64) { normalizeMax(scores, false) }

// taintToleration rejects nodes with NoSchedule/NoExecute taints the pod
// does not tolerate, and scores PreferNoSchedule ones down.
type taintToleration struct{}

func (taintToleration) Name() string  { return "TaintToleration" }
func (taintToleration) Weight() int64 { return 3 }

func tolerated(pod *corev1.Pod, t *corev1.Taint) bool {
	for i := range pod.Spec.Tolerations {
		if pod.Spec.Tolerations[i].ToleratesTaint(klog.Background(), t, false) {
			return true
		}
	}
	return false
}

func (taintToleration) Filter(s *cycleState, ni *nodeInfo) []string {
	for i := range ni.node.Spec.Taints {
		t := &ni.node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(s.pod, t) {
			return []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)}
		}
	}
	return nil
}

func (taintToleration) Score(s *cycleState, ni *nodeInfo) int64 {
	var n int64
	for i := range ni.node.Spec.Taints {
		t := &ni.node.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !tolerated(s.pod, t) {
			n++
		}
	}
	return n
}

func (taintToleration) Normalize(scores []int64) { normalizeMax(scores, true) }
