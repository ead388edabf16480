package attachdetach

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// sync reconciles one node: attachments for the volumes its pods want,
// none for the others, and its status.volumesAttached.
func (c *Controller) sync(ctx context.Context, nodeName string) error {
	node, err := c.nodes.Get(nodeName)
	switch {
	case apierrors.IsNotFound(err):
		node = nil
	case err != nil:
		return fmt.Errorf("node %s: %w", nodeName, err)
	case node.Annotations[annControllerManaged] == "false":
		return nil
	}
	want, err := c.desiredVolumes(nodeName)
	if err != nil {
		return err
	}
	attachments, err := c.attachmentsOn(nodeName)
	if err != nil {
		return err
	}
	have := make(map[string]*storagev1.VolumeAttachment, len(attachments))
	for _, va := range attachments {
		have[va.Name] = va
	}

	var errs []error
	if node != nil { // nothing new is attached to a node that is gone
		for _, name := range slices.Sorted(maps.Keys(want)) {
			if _, ok := have[name]; !ok {
				errs = append(errs, c.attach(ctx, nodeName, want[name]))
			}
		}
	}

	var detach []*storagev1.VolumeAttachment
	var retryIn time.Duration
	for _, va := range attachments {
		if _, wanted := want[va.Name]; wanted {
			c.forgetDetach(va.Name)
			continue
		}
		if va.Spec.Source.PersistentVolumeName == nil || va.DeletionTimestamp != nil || !isAttachmentName(va.Name) {
			continue // not one this controller makes: others own it
		}
		if wait := c.detachHeldFor(node, va); wait > 0 {
			retryIn = minPositive(retryIn, wait)
			continue
		}
		detach = append(detach, va)
	}

	// As upstream, the node stops reporting a volume attached before it
	// is detached, so the kubelet does not start using it meanwhile.
	if node != nil {
		if err := c.updateVolumesAttached(ctx, node, attachments, detach); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	for _, va := range detach {
		errs = append(errs, c.detach(ctx, va))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if retryIn > 0 {
		return controllerutil.RequeueAfter(retryIn)
	}
	return nil
}

// attachmentsOn lists the node's VolumeAttachments, by name.
func (c *Controller) attachmentsOn(node string) ([]*storagev1.VolumeAttachment, error) {
	objs, err := c.attachments.ByIndex(attachmentByNode, node)
	if err != nil {
		return nil, fmt.Errorf("attachments of node %s: %w", node, err)
	}
	out := make([]*storagev1.VolumeAttachment, 0, len(objs))
	for _, o := range objs {
		if va, ok := o.(*storagev1.VolumeAttachment); ok {
			out = append(out, va)
		}
	}
	slices.SortFunc(out, func(a, b *storagev1.VolumeAttachment) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// attach creates the VolumeAttachment the external attacher acts on.
func (c *Controller) attach(ctx context.Context, node string, w *wantedVolume) error {
	pvName := w.pv.Name
	if !multiAttachAllowed(w.pv) {
		if other := c.attachedElsewhere(pvName, node); other != "" {
			c.eventOnWanting(w, corev1.EventTypeWarning, "FailedAttachVolume", fmt.Sprintf(
				"Multi-Attach error for volume %q Volume is already exclusively attached to node %s and can't be attached to another", pvName, other))
			return nil // the other attachment's deletion brings this node back
		}
	}
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: w.attachment},
		Spec: storagev1.VolumeAttachmentSpec{
			Attacher: w.pv.Spec.CSI.Driver,
			NodeName: node,
			Source:   storagev1.VolumeAttachmentSource{PersistentVolumeName: &pvName},
		},
	}
	_, err := c.client.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil
	case err != nil:
		c.eventOnWanting(w, corev1.EventTypeWarning, "FailedAttachVolume",
			fmt.Sprintf("AttachVolume.Attach failed for volume %q : %v", pvName, err))
		return fmt.Errorf("attaching volume %s to node %s: %w", pvName, node, err)
	}
	c.log.Info("attaching volume", "volume", pvName, "node", node, "attachment", w.attachment)
	return nil
}

func (c *Controller) eventOnWanting(w *wantedVolume, eventType, reason, message string) {
	for _, p := range w.pods {
		c.recorder.Event(p, eventType, reason, message)
	}
}

// multiAttachAllowed reports whether a volume may be attached to several
// nodes at once: only when its access modes say so (or say nothing), as
// upstream decides.
func multiAttachAllowed(pv *corev1.PersistentVolume) bool {
	if len(pv.Spec.AccessModes) == 0 {
		return true
	}
	return slices.ContainsFunc(pv.Spec.AccessModes, func(m corev1.PersistentVolumeAccessMode) bool {
		return m == corev1.ReadWriteMany || m == corev1.ReadOnlyMany
	})
}

// attachedElsewhere names a node other than node the volume has an
// attachment on (detaching ones included), or "".
func (c *Controller) attachedElsewhere(pvName, node string) string {
	objs, err := c.attachments.ByIndex(attachmentByPV, pvName)
	if err != nil {
		return ""
	}
	for _, o := range objs {
		if va, ok := o.(*storagev1.VolumeAttachment); ok && va.Spec.NodeName != node {
			return va.Spec.NodeName
		}
	}
	return ""
}

// detachHeldFor returns how much longer an unwanted attachment waits
// because its node still has the volume mounted (in volumesInUse); 0 to
// detach now. A node that is gone mounts nothing.
func (c *Controller) detachHeldFor(node *corev1.Node, va *storagev1.VolumeAttachment) time.Duration {
	if node == nil || !mountedOn(node, va) {
		return 0
	}
	c.mu.Lock()
	first, ok := c.detachWanted[va.Name]
	if !ok {
		first = c.clock.Now()
		c.detachWanted[va.Name] = first
	}
	c.mu.Unlock()
	waited := c.clock.Since(first)
	if waited >= maxWaitForUnmount {
		c.log.Warn("detaching volume still in use: unmount timed out", "attachment", va.Name,
			"volume", *va.Spec.Source.PersistentVolumeName, "node", node.Name, "waited", waited)
		return 0
	}
	return maxWaitForUnmount - waited
}

func (c *Controller) forgetDetach(name string) {
	c.mu.Lock()
	delete(c.detachWanted, name)
	c.mu.Unlock()
}

// mountedOn reports whether the node lists the attachment's volume in
// status.volumesInUse. The unique name carries driver and handle, which
// hash to the attachment's name, so no PersistentVolume is needed.
func mountedOn(node *corev1.Node, va *storagev1.VolumeAttachment) bool {
	for _, name := range node.Status.VolumesInUse {
		if attachmentOf(name, node.Name) == va.Name {
			return true
		}
	}
	return false
}

// attachmentOf is the attachment name of a unique CSI volume name on a
// node, "" for other names.
func attachmentOf(name corev1.UniqueVolumeName, node string) string {
	driver, handle, ok := parseUniqueVolumeName(name)
	if !ok {
		return ""
	}
	return AttachmentName(handle, driver, node)
}

// detach deletes the attachment; the external attacher unpublishes the
// volume and then lets the object go.
func (c *Controller) detach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	err := c.client.StorageV1().VolumeAttachments().Delete(ctx, va.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &va.UID},
	})
	// Conflict: a newer attachment of the same name, which the next sync
	// judges afresh.
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("detaching volume %s from node %s: %w", *va.Spec.Source.PersistentVolumeName, va.Spec.NodeName, err)
	}
	c.forgetDetach(va.Name)
	if err == nil {
		c.log.Info("detaching volume", "volume", *va.Spec.Source.PersistentVolumeName, "node", va.Spec.NodeName, "attachment", va.Name)
	}
	return nil
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || b < a {
		return b
	}
	return a
}
