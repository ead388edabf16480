package nodeaffinity

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testNode(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func podWith(selector map[string]string, terms ...corev1.NodeSelectorTerm) *corev1.Pod {
	p := &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: selector}}
	if terms != nil {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
	return p
}

func expr(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// Required node affinity as the API defines it: nodeSelector and the
// terms must both hold, terms are ORed, requirements within a term ANDed.
func TestRequired(t *testing.T) {
	ssdA := testNode("a", map[string]string{"disk": "ssd", "cores": "8"})
	hddB := testNode("b", map[string]string{"disk": "hdd", "cores": "2"})
	tests := []struct {
		name   string
		pod    *corev1.Pod
		ma, mb bool // matches node a, node b
	}{
		{"nothing asked", podWith(nil), true, true},
		{"nodeSelector", podWith(map[string]string{"disk": "ssd"}), true, false},
		{"In", podWith(nil, expr("disk", corev1.NodeSelectorOpIn, "hdd")), false, true},
		{"NotIn", podWith(nil, expr("disk", corev1.NodeSelectorOpNotIn, "hdd")), true, false},
		{"Exists", podWith(nil, expr("cores", corev1.NodeSelectorOpExists)), true, true},
		{"DoesNotExist", podWith(nil, expr("gpu", corev1.NodeSelectorOpDoesNotExist)), true, true},
		{"Gt", podWith(nil, expr("cores", corev1.NodeSelectorOpGt, "4")), true, false},
		{"Lt", podWith(nil, expr("cores", corev1.NodeSelectorOpLt, "4")), false, true},
		{"terms are ORed", podWith(nil, expr("disk", corev1.NodeSelectorOpIn, "ssd"), expr("cores", corev1.NodeSelectorOpLt, "4")), true, true},
		{"nodeSelector and terms both hold", podWith(map[string]string{"disk": "ssd"}, expr("cores", corev1.NodeSelectorOpLt, "4")), false, false},
		{"matchFields by name", podWith(nil, corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}}), false, true},
		// "A null or empty node selector term matches no objects."
		{"an empty term", podWith(nil, corev1.NodeSelectorTerm{}), false, false},
		{"an empty term beside a real one", podWith(nil, corev1.NodeSelectorTerm{}, expr("disk", corev1.NodeSelectorOpIn, "ssd")), true, false},
		// A malformed term is left out; with none left, nothing matches.
		{"only malformed terms", podWith(nil, expr("cores", corev1.NodeSelectorOpGt, "many")), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := Required(tt.pod)
			got := func(n *corev1.Node) bool { return sel == nil || sel.Matches(n) }
			if got(ssdA) != tt.ma || got(hddB) != tt.mb {
				t.Errorf("matches a=%v b=%v, want a=%v b=%v", got(ssdA), got(hddB), tt.ma, tt.mb)
			}
		})
	}
}

func TestParseTermRefusesWhatTheAPIRefuses(t *testing.T) {
	for name, term := range map[string]corev1.NodeSelectorTerm{
		"unknown operator":       expr("disk", "Near", "ssd"),
		"Gt with two values":     expr("cores", corev1.NodeSelectorOpGt, "1", "2"),
		"matchFields on a label": {MatchFields: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"x"}}}},
		"matchFields Exists":     {MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpExists}}},
	} {
		if _, err := ParseTerm(term); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// Preferred terms keep their weights; weight 0 and malformed terms are
// dropped, and an empty term, which matches nothing, adds nothing.
func TestPreferred(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			{Weight: 5, Preference: expr("disk", corev1.NodeSelectorOpIn, "ssd")},
			{Weight: 0, Preference: expr("disk", corev1.NodeSelectorOpIn, "hdd")},
			{Weight: 3, Preference: expr("cores", corev1.NodeSelectorOpGt, "x")},
			{Weight: 7, Preference: corev1.NodeSelectorTerm{}},
		},
	}}}}
	ssd := testNode("a", map[string]string{"disk": "ssd"})
	var score int64
	for _, w := range Preferred(p) {
		if w.Term.Matches(ssd) {
			score += w.Weight
		}
	}
	if score != 5 {
		t.Errorf("preferred score of an ssd node = %d, want 5", score)
	}
}
