// Package volumematch holds the rules that decide which PersistentVolume
// can hold a PersistentVolumeClaim: storage class, access modes, capacity,
// volume mode, selector, claimRef pre-binding, phase and deletion, the
// order in which fitting volumes are preferred, and a volume's node
// affinity. The PV binder controller and the scheduler's volume binding
// share them; both pass plain objects, and what each keeps on the side
// (the scheduler's assumed bindings) stays with the caller.
package volumematch

import (
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/nodeaffinity"
)

// ClaimClass is the claim's storage class name ("" when it has none),
// reading the beta annotation first as upstream does.
func ClaimClass(pvc *corev1.PersistentVolumeClaim) string {
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

// VolumeClass is the volume's storage class name, beta annotation first.
func VolumeClass(pv *corev1.PersistentVolume) string {
	if c, ok := pv.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	return pv.Spec.StorageClassName
}

// BoundToClaim reports whether pv's claimRef names pvc (and, once the
// reference carries a UID, this very claim rather than an older one of the
// same name).
func BoundToClaim(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name {
		return false
	}
	return ref.UID == "" || ref.UID == pvc.UID
}

// VolumeMode defaults an unset volume mode to Filesystem.
func VolumeMode(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// HasAccessModes reports whether the volume offers every mode in want.
func HasAccessModes(pv *corev1.PersistentVolume, want []corev1.PersistentVolumeAccessMode) bool {
	for _, m := range want {
		if !slices.Contains(pv.Spec.AccessModes, m) {
			return false
		}
	}
	return true
}

// bigEnough reports whether the volume's capacity covers the claim's request.
func bigEnough(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) bool {
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pv.Spec.Capacity[corev1.ResourceStorage]
	return have.Cmp(want) >= 0
}

func sameMode(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) bool {
	return VolumeMode(pvc.Spec.VolumeMode) == VolumeMode(pv.Spec.VolumeMode)
}

// Mismatch explains, in upstream's words, why a volume the claim names by
// volumeName cannot hold it ("" when it can).
func Mismatch(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) string {
	switch {
	case !bigEnough(pvc, pv):
		return "requested PV is too small"
	case ClaimClass(pvc) != VolumeClass(pv):
		return "storageClassName does not match"
	case !sameMode(pvc, pv):
		return "incompatible volumeMode"
	case !HasAccessModes(pv, pvc.Spec.AccessModes):
		return "incompatible accessMode"
	}
	return ""
}

// Policy is where the binder's and the scheduler's searches differ, as
// upstream's do.
type Policy struct {
	// PreboundOnly takes only a volume whose claimRef names the claim: the
	// binder under WaitForFirstConsumer, where the scheduler picks.
	PreboundOnly bool
	// AcceptNewVolumes counts volumes whose phase is still unset or
	// Pending as Available: the binder may see a volume before its own
	// sync marked it.
	AcceptNewVolumes bool
	// FewestAccessModesFirst prefers the least capable volume before the
	// smallest (upstream's binder index); the scheduler orders by size.
	FewestAccessModesFirst bool
}

// Candidate is a volume that can hold a claim on some node: it passed
// every check but node affinity, which depends on the node.
type Candidate struct {
	PV       *corev1.PersistentVolume
	Affinity *NodeAffinity // parsed once, for matching against many nodes
	Prebound bool          // the volume's claimRef already names the claim
}

// Candidates returns, best first, the volumes of pvs that can hold pvc:
//   - a volume pre-bound to the claim that is big enough and of its
//     volume mode wins outright (any class, access modes or phase), alone;
//   - otherwise unclaimed Available volumes of the claim's class, big
//     enough, of its volume mode, offering its access modes and matching
//     its selector, ordered as p says, then by size and name.
//
// Volumes being deleted never match. An invalid selector is an error.
func Candidates(pvc *corev1.PersistentVolumeClaim, pvs []*corev1.PersistentVolume, p Policy) ([]Candidate, error) {
	var sel labels.Selector
	if pvc.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(pvc.Spec.Selector)
		if err != nil {
			return nil, fmt.Errorf("claim %s/%s selector: %w", pvc.Namespace, pvc.Name, err)
		}
		sel = s
	}
	class := ClaimClass(pvc)
	var out []Candidate
	for _, pv := range pvs {
		if pv.Spec.ClaimRef != nil && !BoundToClaim(pv, pvc) {
			continue
		}
		if pv.DeletionTimestamp != nil || !bigEnough(pvc, pv) || !sameMode(pvc, pv) {
			continue
		}
		if pv.Spec.ClaimRef != nil {
			return []Candidate{{PV: pv, Affinity: ParseNodeAffinity(pv), Prebound: true}}, nil
		}
		if p.PreboundOnly || !available(pv, p.AcceptNewVolumes) ||
			(sel != nil && !sel.Matches(labels.Set(pv.Labels))) ||
			VolumeClass(pv) != class || !HasAccessModes(pv, pvc.Spec.AccessModes) {
			continue
		}
		out = append(out, Candidate{PV: pv, Affinity: ParseNodeAffinity(pv)})
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].PV, out[j].PV, p.FewestAccessModesFirst) })
	return out, nil
}

func available(pv *corev1.PersistentVolume, acceptNew bool) bool {
	switch pv.Status.Phase {
	case corev1.VolumeAvailable:
		return true
	case "", corev1.VolumePending:
		return acceptNew
	}
	return false
}

// less orders fitting volumes: optionally fewer access modes first, then
// smaller, then by name so the choice is stable.
func less(a, b *corev1.PersistentVolume, modesFirst bool) bool {
	if modesFirst && len(a.Spec.AccessModes) != len(b.Spec.AccessModes) {
		return len(a.Spec.AccessModes) < len(b.Spec.AccessModes)
	}
	qa, qb := a.Spec.Capacity[corev1.ResourceStorage], b.Spec.Capacity[corev1.ResourceStorage]
	if c := qa.Cmp(qb); c != 0 {
		return c < 0
	}
	return a.Name < b.Name
}

// Pick chooses, for node n, the first candidate whose node affinity
// matches n and whose name is not in taken (volumes other claims of the
// same pod already chose). A pre-bound volume that does not fit the node
// means no volume there, as upstream's FindMatchingVolume.
func Pick(cands []Candidate, n *corev1.Node, taken []string) *corev1.PersistentVolume {
	for _, c := range cands {
		if slices.Contains(taken, c.PV.Name) {
			continue
		}
		if !c.Affinity.Matches(n) {
			if c.Prebound {
				return nil
			}
			continue
		}
		return c.PV
	}
	return nil
}

// NodeAffinity is a volume's required node affinity, parsed. A nil
// *NodeAffinity (no affinity) matches every node; one whose terms are all
// malformed (or absent) matches none, as upstream.
type NodeAffinity struct {
	terms []nodeaffinity.Term
}

// ParseNodeAffinity parses pv's required node affinity; nil when it has none.
func ParseNodeAffinity(pv *corev1.PersistentVolume) *NodeAffinity {
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil {
		return nil
	}
	a := &NodeAffinity{}
	for _, t := range na.Required.NodeSelectorTerms {
		if pt, err := nodeaffinity.ParseTerm(t); err == nil {
			a.terms = append(a.terms, pt)
		}
	}
	return a
}

// Matches is upstream's CheckNodeAffinity: some term matches the node.
func (a *NodeAffinity) Matches(n *corev1.Node) bool {
	if a == nil {
		return true
	}
	for i := range a.terms {
		if a.terms[i].Matches(n) {
			return true
		}
	}
	return false
}

// MatchesNode reports whether pv may be used on node n.
func MatchesNode(pv *corev1.PersistentVolume, n *corev1.Node) bool {
	return ParseNodeAffinity(pv).Matches(n)
}
