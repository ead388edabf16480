package persistentvolume

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	reasonVolumeFailedDelete         = "VolumeFailedDelete"
	reasonVolumeUnknownReclaimPolicy = "VolumeUnknownReclaimPolicy"
)

func (c *Controller) syncVolumeByName(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.syncVolume(ctx, pv)
}

// syncVolume sets a volume's phase from its claimRef and its claim, and
// reclaims it once the claim is gone.
func (c *Controller) syncVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	ref := pv.Spec.ClaimRef
	if ref == nil {
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "")
	}
	if ref.UID == "" {
		// Pre-bound to a claim by name: the claim's sync binds it.
		return c.setVolumePhase(ctx, pv, corev1.VolumeAvailable, "")
	}
	pvc, err := c.claims.PersistentVolumeClaims(ref.Namespace).Get(ref.Name)
	if apierrors.IsNotFound(err) {
		// The informer may lag behind a claim just created: ask the server
		// before releasing the volume.
		pvc, err = c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	}
	switch {
	case apierrors.IsNotFound(err):
		pvc = nil
	case err != nil:
		return err
	}
	if pvc == nil || pvc.UID != ref.UID {
		return c.release(ctx, pv)
	}
	switch pvc.Spec.VolumeName {
	case "":
		// The claim's side is not written yet: its sync finishes the job.
		c.queue.Add(claimPrefix + pvc.Namespace + "/" + pvc.Name)
		return nil
	case pv.Name:
		return c.setVolumePhase(ctx, pv, corev1.VolumeBound, "")
	default:
		// The claim went to another volume: give this one back.
		return c.unbind(ctx, pv)
	}
}

// unbind frees a volume whose claim bound elsewhere: a reference the
// controller wrote is dropped, a user's pre-binding keeps its name.
func (c *Controller) unbind(ctx context.Context, pv *corev1.PersistentVolume) error {
	pv = pv.DeepCopy()
	if pv.Annotations[AnnBoundByController] != "" {
		pv.Spec.ClaimRef = nil
		delete(pv.Annotations, AnnBoundByController)
	} else {
		pv.Spec.ClaimRef.UID = ""
		pv.Spec.ClaimRef.ResourceVersion = ""
	}
	updated, err := c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
	if err != nil {
		return ignoreNotFound(err)
	}
	return c.setVolumePhase(ctx, updated, corev1.VolumeAvailable, "")
}

// release marks a volume whose claim is gone Released and applies its
// reclaim policy. Retain keeps it for the administrator; Delete of a
// provisioned volume is its provisioner's job (it removes the data, then
// the volume); Delete of a volume nobody provisioned removes the object.
func (c *Controller) release(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed {
		if err := c.setVolumePhase(ctx, pv, corev1.VolumeReleased, ""); err != nil {
			return err
		}
	}
	switch pv.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimRetain:
		return nil
	case corev1.PersistentVolumeReclaimDelete:
		if pv.Annotations[AnnProvisionedBy] != "" || pv.DeletionTimestamp != nil {
			return nil
		}
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &pv.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, err.Error())
			return fmt.Errorf("deleting volume %s: %w", pv.Name, err)
		}
		return nil
	default:
		// Recycle is gone upstream too.
		msg := fmt.Sprintf("Volume has unrecognized PersistentVolumeReclaimPolicy %q", pv.Spec.PersistentVolumeReclaimPolicy)
		c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeUnknownReclaimPolicy, msg)
		return c.setVolumePhase(ctx, pv, corev1.VolumeFailed, msg)
	}
}
