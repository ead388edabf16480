package attachdetach

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// wantedVolume is a CSI volume the pods of a node need attached there.
type wantedVolume struct {
	attachment string // the VolumeAttachment's name
	pv         *corev1.PersistentVolume
	pods       []*corev1.Pod
}

// claimName is the claim a pod volume uses: its persistentVolumeClaim, or
// for a generic ephemeral volume the "<pod>-<volume>" claim made for it;
// "" for other volumes.
func claimName(p *corev1.Pod, v *corev1.Volume) string {
	switch {
	case v.PersistentVolumeClaim != nil:
		return v.PersistentVolumeClaim.ClaimName
	case v.Ephemeral != nil:
		return p.Name + "-" + v.Name
	}
	return ""
}

// podTerminated reports whether a pod needs its volumes no more: it ended,
// or it is being deleted and none of its containers still runs (as
// upstream's volume managers decide).
func podTerminated(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true
	}
	if p.DeletionTimestamp == nil {
		return false
	}
	for _, statuses := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, s := range statuses {
			if s.State.Running != nil {
				return false
			}
		}
	}
	return true
}

// desiredVolumes lists, by attachment name, the CSI volumes the active
// pods on node need attached. Claims not yet bound (both ways), volumes not yet in the
// cache and inline CSI volumes (ephemeral, never attached) are left out;
// informer events bring the node back when the first two change.
func (c *Controller) desiredVolumes(node string) (map[string]*wantedVolume, error) {
	objs, err := c.pods.ByIndex(podsByNode, node)
	if err != nil {
		return nil, fmt.Errorf("pods on node %s: %w", node, err)
	}
	want := map[string]*wantedVolume{}
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || podTerminated(p) {
			continue
		}
		for i := range p.Spec.Volumes {
			pv, err := c.attachableVolume(p, &p.Spec.Volumes[i])
			if err != nil {
				return nil, err
			}
			if pv == nil {
				continue
			}
			name := AttachmentName(pv.Spec.CSI.VolumeHandle, pv.Spec.CSI.Driver, node)
			w := want[name]
			if w == nil {
				w = &wantedVolume{attachment: name, pv: pv}
				want[name] = w
			}
			w.pods = append(w.pods, p)
		}
	}
	return want, nil
}

// attachableVolume returns the CSI PersistentVolume a pod volume uses if
// its driver needs attaching, nil otherwise.
func (c *Controller) attachableVolume(p *corev1.Pod, v *corev1.Volume) (*corev1.PersistentVolume, error) {
	name := claimName(p, v)
	if name == "" {
		return nil, nil
	}
	pvc, err := c.claims.PersistentVolumeClaims(p.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim %s/%s: %w", p.Namespace, name, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return nil, nil
	}
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", pvc.Spec.VolumeName, err)
	}
	// A volume not (yet) bound back to this claim is not the claim's.
	if pv.Spec.CSI == nil || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID {
		return nil, nil
	}
	required, err := c.attachRequired(pv.Spec.CSI.Driver)
	if err != nil || !required {
		return nil, err
	}
	return pv, nil
}

// attachRequired reports whether a driver's volumes are attached: yes
// unless its CSIDriver object says attachRequired: false (no object means
// yes, as upstream).
func (c *Controller) attachRequired(driver string) (bool, error) {
	d, err := c.drivers.Get(driver)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("CSIDriver %s: %w", driver, err)
	}
	return d.Spec.AttachRequired == nil || *d.Spec.AttachRequired, nil
}
