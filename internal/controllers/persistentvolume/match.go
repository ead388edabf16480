package persistentvolume

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

// findMatch picks the volume a claim should bind to, as upstream's binder
// index does (rules in volumematch): a volume pre-bound to the claim, else
// the Available one with the fewest access modes, then the smallest. The
// binder also takes volumes its own sync has not marked Available yet.
//
// With delayBinding (WaitForFirstConsumer) only pre-bound volumes are
// taken: the scheduler chooses the others.
func findMatch(pvc *corev1.PersistentVolumeClaim, volumes []*corev1.PersistentVolume, delayBinding bool) (*corev1.PersistentVolume, error) {
	cands, err := volumematch.Candidates(pvc, volumes, volumematch.Policy{
		PreboundOnly:           delayBinding,
		AcceptNewVolumes:       true,
		FewestAccessModesFirst: true,
	})
	if err != nil || len(cands) == 0 {
		return nil, err
	}
	return cands[0].PV, nil
}
