package persistentvolume

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/volumematch"
)

// Upstream's event reasons and messages.
const (
	reasonFailedBinding        = "FailedBinding"
	reasonVolumeMismatch       = "VolumeMismatch"
	reasonProvisioningFailed   = "ProvisioningFailed"
	reasonExternalProvisioning = "ExternalProvisioning"
	reasonWaitForFirstConsumer = "WaitForFirstConsumer"
	reasonClaimLost            = "ClaimLost"
	reasonClaimMisbound        = "ClaimMisbound"

	msgNoVolumeNoClass = "no persistent volumes available for this claim and no storage class is set"
	msgWaitForConsumer = "waiting for first consumer to be created before binding"
)

func (c *Controller) syncClaimByName(ctx context.Context, ns, name string) error {
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if pvc.Annotations[AnnBindCompleted] == "" {
		return c.syncUnboundClaim(ctx, pvc)
	}
	return c.syncBoundClaim(ctx, pvc)
}

// syncUnboundClaim binds a claim that has no volume yet, or asks for one.
func (c *Controller) syncUnboundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.VolumeName != "" {
		return c.syncPreboundClaim(ctx, pvc)
	}
	delay, err := c.delayBinding(pvc)
	if err != nil {
		return err
	}
	volumes, err := c.volumes.List(labels.Everything())
	if err != nil {
		return err
	}
	pv, err := findMatch(pvc, volumes, delay)
	if err != nil {
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonFailedBinding, fmt.Sprintf("invalid selector: %v", err))
		return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
	}
	if pv != nil {
		return c.bind(ctx, pv, pvc)
	}
	if err := c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil); err != nil {
		return err
	}
	class := volumematch.ClaimClass(pvc)
	if class == "" {
		c.recorder.Event(pvc, corev1.EventTypeNormal, reasonFailedBinding, msgNoVolumeNoClass)
		return controllerutil.RequeueAfter(resyncPending)
	}
	return c.askProvisioner(ctx, pvc, class, delay)
}

// askProvisioner hands a claim with no matching volume to its class's
// provisioner: the storage-provisioner annotations say who it is, and with
// WaitForFirstConsumer nothing more happens until the scheduler picks a
// node (selected-node).
func (c *Controller) askProvisioner(ctx context.Context, pvc *corev1.PersistentVolumeClaim, className string, delay bool) error {
	sc, err := c.classes.Get(className)
	if apierrors.IsNotFound(err) {
		msg := fmt.Sprintf("storageclass.storage.k8s.io %q not found", className)
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonProvisioningFailed, msg)
		return controllerutil.RequeueAfter(resyncPending)
	}
	if err != nil {
		return err
	}
	if sc.Provisioner == NoProvisioner {
		if delay && pvc.Annotations[AnnSelectedNode] == "" {
			c.recorder.Event(pvc, corev1.EventTypeNormal, reasonWaitForFirstConsumer, msgWaitForConsumer)
		} else {
			c.recorder.Event(pvc, corev1.EventTypeNormal, reasonFailedBinding,
				fmt.Sprintf("no persistent volumes available for this claim and storageclass %q provisions none", className))
		}
		return controllerutil.RequeueAfter(resyncPending)
	}
	if err := c.setProvisioner(ctx, pvc, sc); err != nil {
		return err
	}
	if delay && pvc.Annotations[AnnSelectedNode] == "" {
		c.recorder.Event(pvc, corev1.EventTypeNormal, reasonWaitForFirstConsumer, msgWaitForConsumer)
		return controllerutil.RequeueAfter(resyncPending)
	}
	c.recorder.Event(pvc, corev1.EventTypeNormal, reasonExternalProvisioning, fmt.Sprintf(
		"Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. "+
			"If volume creation is delayed, please verify that the provisioner is running and correctly registered.", sc.Provisioner))
	return controllerutil.RequeueAfter(resyncPending)
}

// setProvisioner writes both storage-provisioner annotations.
func (c *Controller) setProvisioner(ctx context.Context, pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass) error {
	if pvc.Annotations[AnnStorageProvisioner] == sc.Provisioner && pvc.Annotations[AnnBetaStorageProvisioner] == sc.Provisioner {
		return nil
	}
	pvc = pvc.DeepCopy()
	if pvc.Annotations == nil {
		pvc.Annotations = map[string]string{}
	}
	pvc.Annotations[AnnStorageProvisioner] = sc.Provisioner
	pvc.Annotations[AnnBetaStorageProvisioner] = sc.Provisioner
	_, err := c.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{})
	return ignoreNotFound(err)
}

// syncPreboundClaim binds a claim whose user named the volume.
func (c *Controller) syncPreboundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		// The volume may still come: stay Pending.
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonFailedBinding,
			fmt.Sprintf("volume %q not found", pvc.Spec.VolumeName))
		if err := c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil); err != nil {
			return err
		}
		return controllerutil.RequeueAfter(resyncPending)
	}
	if err != nil {
		return err
	}
	switch {
	case pv.Spec.ClaimRef == nil:
		if why := volumematch.Mismatch(pvc, pv); why != "" {
			c.recorder.Event(pvc, corev1.EventTypeWarning, reasonVolumeMismatch, "Cannot bind to requested volume \""+pv.Name+"\": "+why)
			return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
		}
		return c.bind(ctx, pv, pvc)
	case volumematch.BoundToClaim(pv, pvc):
		return c.bind(ctx, pv, pvc)
	default:
		// The volume belongs to another claim: wait, it may be released.
		c.recorder.Event(pvc, corev1.EventTypeWarning, reasonFailedBinding,
			fmt.Sprintf("volume %q already bound to a different claim.", pv.Name))
		return c.setClaimPhase(ctx, pvc, corev1.ClaimPending, nil)
	}
}

// syncBoundClaim keeps a bound claim's phase honest: Lost when its volume
// vanished or was given to someone else.
func (c *Controller) syncBoundClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Spec.VolumeName == "" {
		return c.loseClaim(ctx, pvc, reasonClaimLost, "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
	}
	pv, err := c.volumes.Get(pvc.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		// The informer may lag: ask the API server before declaring it lost.
		pv, err = c.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return c.loseClaim(ctx, pvc, reasonClaimLost, "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
	}
	if err != nil {
		return err
	}
	switch {
	case pv.Spec.ClaimRef == nil, pv.Spec.ClaimRef.UID == pvc.UID:
		// Rebind a volume that lost its reference; otherwise this only
		// refreshes the phases.
		return c.bind(ctx, pv, pvc)
	default:
		return c.loseClaim(ctx, pvc, reasonClaimMisbound, "Two claims are bound to the same volume, this one is bound incorrectly")
	}
}

func (c *Controller) loseClaim(ctx context.Context, pvc *corev1.PersistentVolumeClaim, reason, msg string) error {
	if pvc.Status.Phase == corev1.ClaimLost {
		return nil
	}
	c.recorder.Event(pvc, corev1.EventTypeWarning, reason, msg)
	return c.setClaimPhase(ctx, pvc, corev1.ClaimLost, nil)
}

// delayBinding reports whether the claim's class waits for the first
// consumer. An unknown class binds immediately (and fails to provision).
func (c *Controller) delayBinding(pvc *corev1.PersistentVolumeClaim) (bool, error) {
	name := volumematch.ClaimClass(pvc)
	if name == "" {
		return false, nil
	}
	sc, err := c.classes.Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer, nil
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
