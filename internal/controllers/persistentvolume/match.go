package persistentvolume

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// claimClass is the claim's storage class name ("" when it has none),
// reading the beta annotation first as upstream does.
func claimClass(pvc *corev1.PersistentVolumeClaim) string {
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}

// volumeClass is the volume's storage class name, beta annotation first.
func volumeClass(pv *corev1.PersistentVolume) string {
	if c, ok := pv.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	return pv.Spec.StorageClassName
}

// boundToClaim reports whether pv's claimRef names pvc (and, once the
// reference carries a UID, this very claim rather than an older one of
// the same name).
func boundToClaim(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	ref := pv.Spec.ClaimRef
	if ref == nil || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name {
		return false
	}
	return ref.UID == "" || ref.UID == pvc.UID
}

// volumeModeOf defaults an unset volume mode to Filesystem.
func volumeModeOf(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

// modesMismatch reports whether claim and volume disagree on block versus
// filesystem.
func modesMismatch(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) bool {
	return volumeModeOf(pvc.Spec.VolumeMode) != volumeModeOf(pv.Spec.VolumeMode)
}

// hasAccessModes reports whether the volume offers every mode the claim asks.
func hasAccessModes(pv *corev1.PersistentVolume, want []corev1.PersistentVolumeAccessMode) bool {
	for _, m := range want {
		if !slices.Contains(pv.Spec.AccessModes, m) {
			return false
		}
	}
	return true
}

// mismatch explains why a volume cannot hold a claim ("" when it can):
// the checks upstream makes of a volume the claim names by volumeName.
func mismatch(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) string {
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pv.Spec.Capacity[corev1.ResourceStorage]
	switch {
	case have.Cmp(want) < 0:
		return "requested PV is too small"
	case claimClass(pvc) != volumeClass(pv):
		return "storageClassName does not match"
	case modesMismatch(pvc, pv):
		return "incompatible volumeMode"
	case !hasAccessModes(pv, pvc.Spec.AccessModes):
		return "incompatible accessMode"
	}
	return ""
}

// findMatch picks the volume a claim should bind to, as upstream's
// volume index does:
//   - a volume pre-bound to this claim (its claimRef names it) wins if it
//     is big enough and of the same volume mode;
//   - otherwise an Available volume with no claimRef, of the claim's class,
//     matching its selector and offering its access modes; of those the one
//     with the fewest access modes, then the smallest that fits.
//
// With delayBinding (WaitForFirstConsumer) only pre-bound volumes are
// taken: the scheduler chooses the others.
func findMatch(pvc *corev1.PersistentVolumeClaim, volumes []*corev1.PersistentVolume, delayBinding bool) (*corev1.PersistentVolume, error) {
	var selector labels.Selector
	if pvc.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(pvc.Spec.Selector)
		if err != nil {
			return nil, err
		}
		selector = s
	}
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	class := claimClass(pvc)
	var best *corev1.PersistentVolume
	for _, pv := range volumes {
		if pv.Spec.ClaimRef != nil && !boundToClaim(pv, pvc) {
			continue
		}
		have := pv.Spec.Capacity[corev1.ResourceStorage]
		if have.Cmp(want) < 0 || modesMismatch(pvc, pv) {
			continue
		}
		if boundToClaim(pv, pvc) {
			return pv, nil
		}
		if delayBinding || pv.DeletionTimestamp != nil {
			continue
		}
		if pv.Status.Phase != corev1.VolumeAvailable && pv.Status.Phase != "" && pv.Status.Phase != corev1.VolumePending {
			continue
		}
		if selector != nil && !selector.Matches(labels.Set(pv.Labels)) {
			continue
		}
		if volumeClass(pv) != class || !hasAccessModes(pv, pvc.Spec.AccessModes) {
			continue
		}
		if best == nil || better(pv, best) {
			best = pv
		}
	}
	return best, nil
}

// better orders candidate volumes: fewer access modes first (the least
// capable volume that serves the claim), then smaller, then by name so the
// choice is stable.
func better(a, b *corev1.PersistentVolume) bool {
	if len(a.Spec.AccessModes) != len(b.Spec.AccessModes) {
		return len(a.Spec.AccessModes) < len(b.Spec.AccessModes)
	}
	qa, qb := a.Spec.Capacity[corev1.ResourceStorage], b.Spec.Capacity[corev1.ResourceStorage]
	if c := qa.Cmp(qb); c != 0 {
		return c < 0
	}
	return a.Name < b.Name
}
