package scheduler

import (
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/nodeaffinity"
)

// claimClass is a claim's storage class, the beta annotation first as
// upstream reads it.
func claimClass(pvc *corev1.PersistentVolumeClaim) string {
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

func volumeClass(pv *corev1.PersistentVolume) string {
	if c, ok := pv.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	return pv.Spec.StorageClassName
}

// boundToClaim reports whether pv's claimRef names this claim.
func boundToClaim(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name {
		return false
	}
	return ref.UID == "" || ref.UID == pvc.UID
}

// claimFullyBound is upstream's test that the PV controller finished
// binding a claim: volumeName set and bind-completed (or phase Bound, the
// same fact as status).
func claimFullyBound(pvc *corev1.PersistentVolumeClaim) bool {
	if pvc.Spec.VolumeName == "" {
		return false
	}
	_, done := pvc.Annotations[annBindCompleted]
	return done || pvc.Status.Phase == corev1.ClaimBound
}

func volumeModeOf(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// pvAffinity is a PV's required node affinity, parsed once.
type pvAffinity struct {
	terms []nodeaffinity.Term
	none  bool // terms were given but none parses: no node matches
}

func parsePVAffinity(pv *corev1.PersistentVolume) *pvAffinity {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil {
		return nil
	}
	a := &pvAffinity{}
	for _, t := range na.Required.NodeSelectorTerms {
		if pt, err := nodeaffinity.ParseTerm(t); err == nil {
			a.terms = append(a.terms, pt)
		}
	}
	a.none = len(a.terms) == 0
	return a
}

// matches is upstream's CheckNodeAffinity: any term matching the node.
func (a *pvAffinity) matches(n *corev1.Node) bool {
	if a == nil {
		return true
	}
	if a.none {
		return false
	}
	for i := range a.terms {
		if a.terms[i].Matches(n) {
			return true
		}
	}
	return false
}

// pvCandidate is a PV that could hold a claim on some node: it passed
// every check except node affinity, which depends on the node.
type pvCandidate struct {
	pv       *corev1.PersistentVolume
	affinity *pvAffinity
	prebound bool // claimRef already names the claim
}

// candidateVolumes returns, in the order a node should try them, the PVs
// of pvs that can hold claim: first one pre-bound to it (it wins outright,
// as upstream's FindMatchingVolume), then Available volumes of the
// claim's class that are big enough, of its volume mode and access modes
// and matching its selector, smallest first.
func candidateVolumes(claim *corev1.PersistentVolumeClaim, pvs []*corev1.PersistentVolume) []pvCandidate {
	want := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	class := claimClass(claim)
	var sel labels.Selector
	if claim.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(claim.Spec.Selector)
		if err != nil {
			return nil // an invalid selector matches no volume
		}
		sel = s
	}
	var out []pvCandidate
	for _, pv := range pvs {
		if pv.Spec.ClaimRef != nil && !boundToClaim(pv, claim) {
			continue
		}
		have := pv.Spec.Capacity[corev1.ResourceStorage]
		if have.Cmp(want) < 0 || volumeModeOf(claim.Spec.VolumeMode) != volumeModeOf(pv.Spec.VolumeMode) || pv.DeletionTimestamp != nil {
			continue
		}
		if boundToClaim(pv, claim) {
			return []pvCandidate{{pv: pv, affinity: parsePVAffinity(pv), prebound: true}}
		}
		if pv.Status.Phase != corev1.VolumeAvailable ||
			(sel != nil && !sel.Matches(labels.Set(pv.Labels))) ||
			volumeClass(pv) != class ||
			!hasAccessModes(pv, claim.Spec.AccessModes) {
			continue
		}
		out = append(out, pvCandidate{pv: pv, affinity: parsePVAffinity(pv)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].pv.Spec.Capacity[corev1.ResourceStorage], out[j].pv.Spec.Capacity[corev1.ResourceStorage]
		if c := a.Cmp(b); c != 0 {
			return c < 0
		}
		return out[i].pv.Name < out[j].pv.Name
	})
	return out
}

func hasAccessModes(pv *corev1.PersistentVolume, want []corev1.PersistentVolumeAccessMode) bool {
	for _, m := range want {
		if !slices.Contains(pv.Spec.AccessModes, m) {
			return false
		}
	}
	return true
}

// pickVolume chooses, for one node, the first candidate whose node
// affinity matches and that no other claim of the pod took. A pre-bound
// volume that does not fit the node means no volume here.
func pickVolume(cands []pvCandidate, n *corev1.Node, taken []string) *corev1.PersistentVolume {
	for _, c := range cands {
		if slices.Contains(taken, c.pv.Name) {
			continue
		}
		if !c.affinity.matches(n) {
			if c.prebound {
				return nil
			}
			continue
		}
		return c.pv
	}
	return nil
}

// capacityPool is a CSIStorageCapacity big enough for a claim, with its
// topology parsed.
type capacityPool struct {
	selector labels.Selector
}

// sufficientPools returns the CSIStorageCapacity objects of class that can
// hold size bytes (MaximumVolumeSize when given, else Capacity), as
// upstream's hasEnoughCapacity filters them. Objects without topology
// reach no node and are dropped.
func sufficientPools(all []*storagev1.CSIStorageCapacity, class string, size int64) []capacityPool {
	var out []capacityPool
	for _, c := range all {
		if c.StorageClassName != class || c.NodeTopology == nil {
			continue
		}
		limit := c.Capacity
		if c.MaximumVolumeSize != nil {
			limit = c.MaximumVolumeSize
		}
		if limit == nil || limit.Value() < size {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.NodeTopology)
		if err != nil {
			continue
		}
		out = append(out, capacityPool{selector: sel})
	}
	return out
}

// matchesTopology is upstream's MatchTopologySelectorTerms for a class's
// allowedTopologies: no terms match every node; otherwise some term must
// have every key's label among its values.
func matchesTopology(terms []corev1.TopologySelectorTerm, nodeLabels map[string]string) bool {
	if len(terms) == 0 {
		return true
	}
	for _, t := range terms {
		ok := true
		for _, e := range t.MatchLabelExpressions {
			v, has := nodeLabels[e.Key]
			if !has || !slices.Contains(e.Values, v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
