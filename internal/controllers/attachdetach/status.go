package attachdetach

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// devicePathKey is the attachment metadata key drivers that publish a
// device path use; its value becomes the volume's devicePath.
const devicePathKey = "devicePath"

// updateVolumesAttached sets node.status.volumesAttached to the node's
// attachments the external attacher reports attached, leaving out those
// being (or about to be) detached.
func (c *Controller) updateVolumesAttached(ctx context.Context, node *corev1.Node,
	attachments, detaching []*storagev1.VolumeAttachment) error {
	want := c.volumesAttached(node, attachments, detaching)
	if sameVolumes(want, node.Status.VolumesAttached) {
		return nil
	}
	// A merge patch replaces the list (it has no merge key), and null
	// drops the field.
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"volumesAttached": want}})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node %s volumesAttached: %w", node.Name, err)
	}
	return nil
}

// volumesAttached builds the list, sorted by name; nil when empty.
func (c *Controller) volumesAttached(node *corev1.Node, attachments, detaching []*storagev1.VolumeAttachment) []corev1.AttachedVolume {
	var out []corev1.AttachedVolume
	for _, va := range attachments {
		if !va.Status.Attached || va.DeletionTimestamp != nil || va.Spec.Source.PersistentVolumeName == nil ||
			slices.Contains(detaching, va) {
			continue
		}
		name := c.uniqueNameOf(node, va)
		if name == "" {
			c.log.Debug("attached volume of unknown handle left out of node status", "attachment", va.Name, "node", node.Name)
			continue
		}
		out = append(out, corev1.AttachedVolume{Name: name, DevicePath: va.Status.AttachmentMetadata[devicePathKey]})
	}
	slices.SortFunc(out, func(a, b corev1.AttachedVolume) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// uniqueNameOf finds the unique volume name of an attachment: from its
// PersistentVolume, or, when that is gone, from a name the node already
// reports that hashes to the attachment's name.
func (c *Controller) uniqueNameOf(node *corev1.Node, va *storagev1.VolumeAttachment) corev1.UniqueVolumeName {
	pv, err := c.volumes.Get(*va.Spec.Source.PersistentVolumeName)
	if err == nil && pv.Spec.CSI != nil {
		if AttachmentName(pv.Spec.CSI.VolumeHandle, pv.Spec.CSI.Driver, node.Name) == va.Name {
			return UniqueVolumeName(pv.Spec.CSI.Driver, pv.Spec.CSI.VolumeHandle)
		}
	}
	known := slices.Clone(node.Status.VolumesInUse)
	for _, v := range node.Status.VolumesAttached {
		known = append(known, v.Name)
	}
	for _, name := range known {
		if attachmentOf(name, node.Name) == va.Name {
			return name
		}
	}
	return ""
}

// sameVolumes compares two volumesAttached lists regardless of order.
func sameVolumes(a, b []corev1.AttachedVolume) bool {
	if len(a) != len(b) {
		return false
	}
	byName := func(x, y corev1.AttachedVolume) int { return cmp.Compare(x.Name, y.Name) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, byName)
	slices.SortFunc(b, byName)
	return equality.Semantic.DeepEqual(a, b)
}
