package persistentvolume

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

// bind ties pv and pvc together in upstream's order, each step a no-op
// when already done: the volume's claimRef, the volume's phase, the
// claim's volumeName and bind-completed annotation, the claim's status.
// A crash between steps leaves a state the next sync completes.
func (c *Controller) bind(ctx context.Context, pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) error {
	updated, err := c.bindVolumeToClaim(ctx, pv, pvc)
	if err != nil {
		return fmt.Errorf("binding volume %s to claim %s/%s: %w", pv.Name, pvc.Namespace, pvc.Name, err)
	}
	pv = updated
	if err := c.setVolumePhase(ctx, pv, corev1.VolumeBound, ""); err != nil {
		return fmt.Errorf("volume %s phase: %w", pv.Name, err)
	}
	bound, err := c.bindClaimToVolume(ctx, pvc, pv)
	if err != nil {
		return fmt.Errorf("binding claim %s/%s to volume %s: %w", pvc.Namespace, pvc.Name, pv.Name, err)
	}
	pvc = bound
	if err := c.setClaimPhase(ctx, pvc, corev1.ClaimBound, pv); err != nil {
		return fmt.Errorf("claim %s/%s status: %w", pvc.Namespace, pvc.Name, err)
	}
	return nil
}

// bindVolumeToClaim points the volume's claimRef at this claim (with its
// UID); a reference the controller wrote is marked bound-by-controller.
func (c *Controller) bindVolumeToClaim(ctx context.Context, pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) (*corev1.PersistentVolume, error) {
	ref := pv.Spec.ClaimRef
	if ref != nil && ref.UID == pvc.UID && ref.Name == pvc.Name && ref.Namespace == pvc.Namespace {
		return pv, nil
	}
	pv = pv.DeepCopy()
	if ref == nil || !volumematch.BoundToClaim(pv, pvc) {
		// Not pre-bound by a user, the scheduler or a provisioner.
		metav1.SetMetaDataAnnotation(&pv.ObjectMeta, AnnBoundByController, "yes")
	}
	pv.Spec.ClaimRef = &corev1.ObjectReference{
		Kind: "PersistentVolumeClaim", APIVersion: "v1",
		Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion,
	}
	return c.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{})
}

// bindClaimToVolume sets the claim's volumeName (marked bound-by-controller
// when the controller chose it) and bind-completed.
func (c *Controller) bindClaimToVolume(ctx context.Context, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) (*corev1.PersistentVolumeClaim, error) {
	if pvc.Spec.VolumeName == pv.Name && pvc.Annotations[AnnBindCompleted] != "" {
		return pvc, nil
	}
	pvc = pvc.DeepCopy()
	if pvc.Spec.VolumeName != pv.Name {
		pvc.Spec.VolumeName = pv.Name
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, AnnBoundByController, "yes")
	}
	metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, AnnBindCompleted, "yes")
	return c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{})
}

// setClaimPhase writes the claim's phase; when bound, also the volume's
// access modes and capacity, as upstream reports them.
func (c *Controller) setClaimPhase(ctx context.Context, pvc *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase, pv *corev1.PersistentVolume) error {
	want := pvc.Status.DeepCopy()
	want.Phase = phase
	if pv != nil {
		want.AccessModes = pv.Spec.AccessModes
		if len(want.Capacity) == 0 {
			// Later growth is the expander's to report.
			want.Capacity = corev1.ResourceList{corev1.ResourceStorage: pv.Spec.Capacity[corev1.ResourceStorage]}
		}
	}
	if equality.Semantic.DeepEqual(*want, pvc.Status) {
		return nil
	}
	pvc = pvc.DeepCopy()
	pvc.Status = *want
	_, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{})
	return ignoreNotFound(err)
}

// setVolumePhase writes the volume's phase and message.
func (c *Controller) setVolumePhase(ctx context.Context, pv *corev1.PersistentVolume, phase corev1.PersistentVolumePhase, msg string) error {
	if pv.Status.Phase == phase && pv.Status.Message == msg {
		return nil
	}
	pv = pv.DeepCopy()
	now := metav1.NewTime(c.Clock.Now())
	pv.Status.Phase = phase
	pv.Status.Message = msg
	pv.Status.LastPhaseTransitionTime = &now
	_, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{})
	return ignoreNotFound(err)
}
