// Package nodeaffinity evaluates a pod's node constraints (nodeSelector
// and node affinity terms, all operators, matchFields) against nodes. The
// scheduler and the DaemonSet controller share it.
package nodeaffinity

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Term is one parsed NodeSelectorTerm: labels and fields must
// both match.
type Term struct {
	labels labels.Selector
	fields []corev1.NodeSelectorRequirement // matchFields (metadata.name)
}

// Selector is spec.nodeSelector AND (any of the required terms).
type Selector struct {
	selector labels.Selector // spec.nodeSelector; nil when unset
	terms    []Term
}

func (ns *Selector) Matches(n *corev1.Node) bool {
	if ns.selector != nil && !ns.selector.Matches(labels.Set(n.Labels)) {
		return false
	}
	if len(ns.terms) == 0 {
		return true
	}
	for i := range ns.terms {
		if ns.terms[i].Matches(n) {
			return true
		}
	}
	return false
}

// Matches reports whether node n satisfies every requirement of the term.
// An empty term matches no node, as the API documents ("A null or empty
// node selector term matches no objects"); an empty preferred term is so
// a no-op.
func (t *Term) Matches(n *corev1.Node) bool {
	if t.labels == nil && len(t.fields) == 0 {
		return false
	}
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

// ParseTerm turns a NodeSelectorTerm into selectors. A malformed term
// matches nothing, as upstream treats it.
func ParseTerm(t corev1.NodeSelectorTerm) (Term, error) {
	var out Term
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

// Required builds the hard node constraints of a pod.
func Required(pod *corev1.Pod) *Selector {
	ns := &Selector{}
	if len(pod.Spec.NodeSelector) > 0 {
		ns.selector = labels.SelectorFromSet(pod.Spec.NodeSelector)
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			if pt, err := ParseTerm(t); err == nil {
				ns.terms = append(ns.terms, pt)
			}
		}
		if len(ns.terms) == 0 {
			// Terms were given but none is valid: nothing can match.
			ns.terms = []Term{{fields: []corev1.NodeSelectorRequirement{{Key: "invalid"}}}}
		}
	}
	if ns.selector == nil && len(ns.terms) == 0 {
		return nil
	}
	return ns
}

type WeightedTerm struct {
	Weight int64
	Term   Term
}

func Preferred(pod *corev1.Pod) []WeightedTerm {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil {
		return nil
	}
	var out []WeightedTerm
	for _, p := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if t, err := ParseTerm(p.Preference); err == nil && p.Weight != 0 {
			out = append(out, WeightedTerm{Weight: int64(p.Weight), Term: t})
		}
	}
	return out
}
