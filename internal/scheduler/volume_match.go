package scheduler

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

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

// volumeCandidates returns the PVs that can hold claim, in the order a
// node should try them (rules in volumematch). As upstream's scheduler, it
// takes only Available volumes and prefers the smallest, whatever their
// access modes; an invalid selector matches no volume.
func volumeCandidates(claim *corev1.PersistentVolumeClaim, pvs []*corev1.PersistentVolume) []volumematch.Candidate {
	cands, err := volumematch.Candidates(claim, pvs, volumematch.Policy{})
	if err != nil {
		return nil
	}
	return cands
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
