package csiprovisioner

import (
	"context"
	"fmt"
	"maps"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

const reasonVolumeFailedDelete = "VolumeFailedDelete"

// syncVolume deletes a Released volume of reclaim policy Delete that a
// driver this controller serves provisioned: DeleteVolume on a node from
// which the volume is accessible, then the PersistentVolume, then the
// finalizer. Failures leave both, with an event, and are retried.
func (c *Controller) syncVolume(ctx context.Context, name string) error {
	pv, err := c.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	driver := pv.Annotations[annProvisionedBy]
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != driver || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return nil
	}
	hasFinalizer := slices.Contains(pv.Finalizers, Finalizer)
	if pv.DeletionTimestamp != nil && !hasFinalizer {
		return nil // nothing holds it for us: upstream leaves it too
	}
	nodes, err := c.driverNodes(driver)
	if err != nil || len(nodes) == 0 {
		return err
	}
	// Only nodes the volume is accessible from: a driver elsewhere may
	// not know the volume and answer a delete of it with success.
	var candidates []string
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		node, err := c.nodes.Get(n)
		if err == nil && volumematch.MatchesNode(pv, node) {
			candidates = append(candidates, n)
		}
	}
	if len(candidates) == 0 {
		msg := fmt.Sprintf("no node from which volume %s is accessible has CSI driver %s registered", name, driver)
		c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, msg)
		return fmt.Errorf("%s", msg)
	}
	secrets, err := c.fetchSecret(ctx, deletionSecret(pv))
	if err != nil {
		c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, err.Error())
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if err := c.deleteVolume(ctx, candidates, driver, &csipb.DeleteVolumeRequest{VolumeId: pv.Spec.CSI.VolumeHandle, Secrets: secrets}); err != nil {
		c.recorder.Event(pv, corev1.EventTypeWarning, reasonVolumeFailedDelete, err.Error())
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if pv.DeletionTimestamp == nil {
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // gone, or a new volume of that name
		}
		if err != nil {
			return fmt.Errorf("deleting volume %s: %w", name, err)
		}
	}
	if hasFinalizer {
		if err := c.removeFinalizer(ctx, pv); err != nil {
			return err
		}
	}
	c.log.Info("deleted volume", "volume", name, "driver", driver)
	return nil
}

// deleteVolume asks the candidate nodes in turn until one's driver
// answers.
func (c *Controller) deleteVolume(ctx context.Context, candidates []string, driver string, req *csipb.DeleteVolumeRequest) error {
	var lastErr error
	for _, node := range candidates {
		err := c.csi.DeleteVolume(ctx, node, driver, req)
		if err == nil || isDriverError(err) {
			return err
		}
		lastErr = err
	}
	return lastErr
}

// removeFinalizer drops Finalizer from the live volume.
func (c *Controller) removeFinalizer(ctx context.Context, pv *corev1.PersistentVolume) error {
	live, err := c.client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if live.UID != pv.UID || !slices.Contains(live.Finalizers, Finalizer) {
		return nil
	}
	live.Finalizers = slices.DeleteFunc(live.Finalizers, func(f string) bool { return f == Finalizer })
	_, err = c.client.CoreV1().PersistentVolumes().Update(ctx, live, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
