package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/nodeaffinity"
)

// podTerm is a parsed PodAffinityTerm.
type podTerm struct {
	selector    labels.Selector
	namespaces  map[string]bool // nil: every namespace
	topologyKey string
	weight      int64 // preferred terms only
}

func parsePodTerm(owner *corev1.Pod, t corev1.PodAffinityTerm, weight int32) (podTerm, bool) {
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil || t.TopologyKey == "" {
		return podTerm{}, false
	}
	pt := podTerm{selector: sel, topologyKey: t.TopologyKey, weight: int64(weight)}
	if t.NamespaceSelector == nil || len(t.Namespaces) > 0 {
		pt.namespaces = map[string]bool{}
		for _, ns := range t.Namespaces {
			pt.namespaces[ns] = true
		}
		if len(t.Namespaces) == 0 {
			pt.namespaces[owner.Namespace] = true
		}
	}
	return pt, true
}

func (t *podTerm) matches(p *corev1.Pod) bool {
	if t.namespaces != nil && !t.namespaces[p.Namespace] {
		return false
	}
	return t.selector.Matches(labels.Set(p.Labels))
}

// affinityState holds, for one pod, the topology domains its terms (and
// other pods' anti-affinity) allow or forbid.
type affinityState struct {
	affinity, anti []podTerm
	affCounts      []map[string]int // per affinity term: topology value -> matching pods
	affTotal       []int
	antiCounts     []map[string]int
	// forbidden[key][value]: an existing pod's required anti-affinity
	// rejects the incoming pod in that domain.
	forbidden map[string]map[string]bool
	preferred []podTerm // weight < 0 for anti-affinity
	prefScore map[string]map[string]int64
}

func hasPodAffinity(p *corev1.Pod) bool {
	a := p.Spec.Affinity
	return a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil)
}

// prepareAffinity walks every placed pod once. The cache lock is held.
func prepareAffinity(pod *corev1.Pod, nodes map[string]*nodeInfo, anyAnti bool) *affinityState {
	if !hasPodAffinity(pod) && !anyAnti {
		return nil
	}
	st := &affinityState{forbidden: map[string]map[string]bool{}, prefScore: map[string]map[string]int64{}}
	if a := pod.Spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			for _, t := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				if pt, ok := parsePodTerm(pod, t, 0); ok {
					st.affinity = append(st.affinity, pt)
				}
			}
			for _, w := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				if pt, ok := parsePodTerm(pod, w.PodAffinityTerm, w.Weight); ok {
					st.preferred = append(st.preferred, pt)
				}
			}
		}
		if pa := a.PodAntiAffinity; pa != nil {
			for _, t := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				if pt, ok := parsePodTerm(pod, t, 0); ok {
					st.anti = append(st.anti, pt)
				}
			}
			for _, w := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				if pt, ok := parsePodTerm(pod, w.PodAffinityTerm, -w.Weight); ok {
					st.preferred = append(st.preferred, pt)
				}
			}
		}
	}
	st.affCounts = make([]map[string]int, len(st.affinity))
	st.affTotal = make([]int, len(st.affinity))
	st.antiCounts = make([]map[string]int, len(st.anti))
	for i := range st.affCounts {
		st.affCounts[i] = map[string]int{}
	}
	for i := range st.antiCounts {
		st.antiCounts[i] = map[string]int{}
	}
	podLabels := labels.Set(pod.Labels)
	for _, ni := range nodes {
		nl := ni.node.Labels
		for _, pi := range ni.pods {
			other := pi.pod
			for i := range st.affinity {
				if v, ok := nl[st.affinity[i].topologyKey]; ok && st.affinity[i].matches(other) {
					st.affCounts[i][v]++
					st.affTotal[i]++
				}
			}
			for i := range st.anti {
				if v, ok := nl[st.anti[i].topologyKey]; ok && st.anti[i].matches(other) {
					st.antiCounts[i][v]++
				}
			}
			for i := range st.preferred {
				t := &st.preferred[i]
				if v, ok := nl[t.topologyKey]; ok && t.matches(other) {
					if st.prefScore[t.topologyKey] == nil {
						st.prefScore[t.topologyKey] = map[string]int64{}
					}
					st.prefScore[t.topologyKey][v] += t.weight
				}
			}
			// Existing pods' required anti-affinity against the new pod.
			if oa := other.Spec.Affinity; oa != nil && oa.PodAntiAffinity != nil {
				for _, t := range oa.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
					pt, ok := parsePodTerm(other, t, 0)
					if !ok || (pt.namespaces != nil && !pt.namespaces[pod.Namespace]) || !pt.selector.Matches(podLabels) {
						continue
					}
					if v, ok := nl[pt.topologyKey]; ok {
						if st.forbidden[pt.topologyKey] == nil {
							st.forbidden[pt.topologyKey] = map[string]bool{}
						}
						st.forbidden[pt.topologyKey][v] = true
					}
				}
			}
		}
	}
	return st
}

// interPodAffinity enforces required pod affinity and anti-affinity and
// scores the preferred terms.
type interPodAffinity struct{}

func (interPodAffinity) Name() string  { return "InterPodAffinity" }
func (interPodAffinity) Weight() int64 { return 2 }

func (interPodAffinity) Filter(s *cycleState, ni *nodeInfo) []string {
	st := s.affinity
	if st == nil {
		return nil
	}
	nl := ni.node.Labels
	for key, values := range st.forbidden {
		if v, ok := nl[key]; ok && values[v] {
			return []string{"node(s) didn't match pod anti-affinity rules"}
		}
	}
	for i := range st.anti {
		if v, ok := nl[st.anti[i].topologyKey]; ok && st.antiCounts[i][v] > 0 {
			return []string{"node(s) didn't match pod anti-affinity rules"}
		}
	}
	for i := range st.affinity {
		t := &st.affinity[i]
		v, ok := nl[t.topologyKey]
		if !ok {
			return []string{"node(s) didn't match pod affinity rules"}
		}
		// The first pod of a group that selects itself may go anywhere.
		if st.affCounts[i][v] == 0 && !(st.affTotal[i] == 0 && t.matches(s.pod)) {
			return []string{"node(s) didn't match pod affinity rules"}
		}
	}
	return nil
}

func (interPodAffinity) Score(s *cycleState, ni *nodeInfo) int64 {
	if s.affinity == nil {
		return 0
	}
	var sum int64
	for key, byValue := range s.affinity.prefScore {
		if v, ok := ni.node.Labels[key]; ok {
			sum += byValue[v]
		}
	}
	return sum
}

// Normalize maps the weighted sums, which may be negative, onto 0..100.
func (interPodAffinity) Normalize(scores []int64) {
	if len(scores) == 0 {
		return
	}
	lo, hi := scores[0], scores[0]
	for _, s := range scores {
		lo, hi = min(lo, s), max(hi, s)
	}
	for i, s := range scores {
		if hi == lo {
			scores[i] = 0
			continue
		}
		scores[i] = (s - lo) * maxNodeScore / (hi - lo)
	}
}

// spreadConstraint is a parsed TopologySpreadConstraint with the pod
// counts per domain.
type spreadConstraint struct {
	key       string
	maxSkew   int32
	hard      bool
	selector  labels.Selector
	counts    map[string]int
	minCount  int
	selfMatch int
}

type spreadState struct {
	constraints []spreadConstraint
}

// spreadCounts remembers, per (namespace, selector) and node, how many
// matching pods the node held at a given node generation, so that a
// scheduling cycle recounts only the nodes that changed since the last one.
type spreadCounts struct {
	byKey map[string]map[string]nodeCount
}

const maxSpreadKeys = 1024

type nodeCount struct {
	generation int64
	count      int
}

func (sc *spreadCounts) count(key string, ni *nodeInfo, namespace string, sel labels.Selector) int {
	if sc.byKey == nil || len(sc.byKey) > maxSpreadKeys {
		// Selectors come and go with workloads; start afresh rather than grow.
		sc.byKey = map[string]map[string]nodeCount{}
	}
	perNode := sc.byKey[key]
	if perNode == nil {
		perNode = map[string]nodeCount{}
		sc.byKey[key] = perNode
	}
	if c, ok := perNode[ni.node.Name]; ok && c.generation == ni.generation {
		return c.count
	}
	n := 0
	for _, pi := range ni.pods {
		if pi.pod.Namespace == namespace && sel.Matches(labels.Set(pi.pod.Labels)) {
			n++
		}
	}
	perNode[ni.node.Name] = nodeCount{generation: ni.generation, count: n}
	return n
}

// prepareSpread counts matching pods per domain over the nodes the pod may
// use (those with the key that pass its node affinity). The cache lock is
// held; counts is only used by the scheduling goroutine.
func prepareSpread(pod *corev1.Pod, nodes map[string]*nodeInfo, required *nodeaffinity.Selector, counts *spreadCounts) *spreadState {
	if len(pod.Spec.TopologySpreadConstraints) == 0 {
		return nil
	}
	st := &spreadState{}
	var keys []string
	for _, c := range pod.Spec.TopologySpreadConstraints {
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			continue
		}
		sc := spreadConstraint{key: c.TopologyKey, maxSkew: c.MaxSkew, hard: c.WhenUnsatisfiable == corev1.DoNotSchedule,
			selector: sel, counts: map[string]int{}}
		if sel.Matches(labels.Set(pod.Labels)) {
			sc.selfMatch = 1
		}
		st.constraints = append(st.constraints, sc)
		keys = append(keys, pod.Namespace+"|"+sel.String())
	}
	for _, ni := range nodes {
		if required != nil && !required.Matches(ni.node) {
			continue
		}
		for i := range st.constraints {
			c := &st.constraints[i]
			v, ok := ni.node.Labels[c.key]
			if !ok {
				continue
			}
			c.counts[v] += counts.count(keys[i], ni, pod.Namespace, c.selector)
		}
	}
	for i := range st.constraints {
		c := &st.constraints[i]
		first := true
		for _, n := range c.counts {
			if first || n < c.minCount {
				c.minCount, first = n, false
			}
		}
	}
	return st
}

// podTopologySpread keeps the skew of matching pods across domains within
// maxSkew (DoNotSchedule) and prefers less loaded domains (ScheduleAnyway).
type podTopologySpread struct{}

func (podTopologySpread) Name() string  { return "PodTopologySpread" }
func (podTopologySpread) Weight() int64 { return 2 }

func (podTopologySpread) Filter(s *cycleState, ni *nodeInfo) []string {
	if s.spread == nil {
		return nil
	}
	for i := range s.spread.constraints {
		c := &s.spread.constraints[i]
		if !c.hard {
			continue
		}
		v, ok := ni.node.Labels[c.key]
		if !ok {
			return []string{"node(s) didn't match pod topology spread constraints (missing required label)"}
		}
		if c.counts[v]+c.selfMatch-c.minCount > int(c.maxSkew) {
			return []string{"node(s) didn't match pod topology spread constraints"}
		}
	}
	return nil
}

func (podTopologySpread) Score(s *cycleState, ni *nodeInfo) int64 {
	if s.spread == nil {
		return 0
	}
	var sum int64
	for i := range s.spread.constraints {
		c := &s.spread.constraints[i]
		if c.hard {
			continue
		}
		if v, ok := ni.node.Labels[c.key]; ok {
			sum += int64(c.counts[v])
		}
	}
	return sum
}

func (podTopologySpread) Normalize(scores []int64) { normalizeMax(scores, true) }
