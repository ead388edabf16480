package scheduler

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/klog/v2"
)

// nodeSelectorTerm is one parsed NodeSelectorTerm: labels and fields must
// both match.
type nodeSelectorTerm struct {
	labels labels.Selector
	fields []corev1.NodeSelectorRequirement // matchFields (metadata.name)
}

// nodeSelector is spec.nodeSelector AND (any of the required terms).
type nodeSelector struct {
	selector labels.Selector // spec.nodeSelector; nil when unset
	terms    []nodeSelectorTerm
}

func (ns *nodeSelector) matches(n *corev1.Node) bool {
	if ns.selector != nil && !ns.selector.Matches(labels.Set(n.Labels)) {
		return false
	}
	if len(ns.terms) == 0 {
		return true
	}
	for i := range ns.terms {
		if ns.terms[i].matches(n) {
			return true
		}
	}
	return false
}

func (t *nodeSelectorTerm) matches(n *corev1.Node) bool {
	if t.labels != nil && !t.labels.Matches(labels.Set(n.Labels)) {
		return false
	}
	for _, f := range t.fields {
		if f.Key != "metadata.name" {
			return false
		}
		in := false
		for _, v := range f.Values {
			if v == n.Name {
				in = true
			}
		}
		if (f.Operator == corev1.NodeSelectorOpIn) != in {
			return false
		}
	}
	return true
}

var nodeOps = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn:           selection.In,
	corev1.NodeSelectorOpNotIn:        selection.NotIn,
	corev1.NodeSelectorOpExists:       selection.Exists,
	corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt:           selection.GreaterThan,
	corev1.NodeSelectorOpLt:           selection.LessThan,
}

// parseTerm turns a NodeSelectorTerm into selectors. A malformed term
// matches nothing, as upstream treats it.
func parseTerm(t corev1.NodeSelectorTerm) (nodeSelectorTerm, error) {
	var out nodeSelectorTerm
	if len(t.MatchExpressions) > 0 {
		sel := labels.NewSelector()
		for _, e := range t.MatchExpressions {
			op, ok := nodeOps[e.Operator]
			if !ok {
				return out, fmt.Errorf("unknown operator %q", e.Operator)
			}
			vals := e.Values
			if op == selection.GreaterThan || op == selection.LessThan {
				if len(vals) != 1 {
					return out, fmt.Errorf("%s needs one value", e.Operator)
				}
				if _, err := strconv.ParseInt(vals[0], 10, 64); err != nil {
					return out, fmt.Errorf("%s needs an integer: %v", e.Operator, err)
				}
			}
			req, err := labels.NewRequirement(e.Key, op, vals)
			if err != nil {
				return out, err
			}
			sel = sel.Add(*req)
		}
		out.labels = sel
	}
	for _, f := range t.MatchFields {
		if f.Key != "metadata.name" || (f.Operator != corev1.NodeSelectorOpIn && f.Operator != corev1.NodeSelectorOpNotIn) {
			return out, fmt.Errorf("unsupported matchFields requirement %s %s", f.Key, f.Operator)
		}
		out.fields = append(out.fields, f)
	}
	return out, nil
}

// requiredNodeSelector builds the hard node constraints of a pod.
func requiredNodeSelector(pod *corev1.Pod) *nodeSelector {
	ns := &nodeSelector{}
	if len(pod.Spec.NodeSelector) > 0 {
		ns.selector = labels.SelectorFromSet(pod.Spec.NodeSelector)
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			if pt, err := parseTerm(t); err == nil {
				ns.terms = append(ns.terms, pt)
			}
		}
		if len(ns.terms) == 0 {
			// Terms were given but none is valid: nothing can match.
			ns.terms = []nodeSelectorTerm{{fields: []corev1.NodeSelectorRequirement{{Key: "invalid"}}}}
		}
	}
	if ns.selector == nil && len(ns.terms) == 0 {
		return nil
	}
	return ns
}

type weightedTerm struct {
	weight int64
	term   nodeSelectorTerm
}

func preferredTerms(pod *corev1.Pod) []weightedTerm {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil {
		return nil
	}
	var out []weightedTerm
	for _, p := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if t, err := parseTerm(p.Preference); err == nil && p.Weight != 0 {
			out = append(out, weightedTerm{weight: int64(p.Weight), term: t})
		}
	}
	return out
}

// nodeAffinity filters on nodeSelector and required node affinity, and
// scores preferred node affinity.
type nodeAffinity struct{}

func (nodeAffinity) Name() string  { return "NodeAffinity" }
func (nodeAffinity) Weight() int64 { return 2 }

func (nodeAffinity) Filter(s *cycleState, ni *nodeInfo) []string {
	if s.nodeAffinity != nil && !s.nodeAffinity.matches(ni.node) {
		return []string{"node(s) didn't match Pod's node affinity/selector"}
	}
	return nil
}

func (nodeAffinity) Score(s *cycleState, ni *nodeInfo) int64 {
	var sum int64
	for i := range s.preferred {
		if s.preferred[i].term.matches(ni.node) {
			sum += s.preferred[i].weight
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
