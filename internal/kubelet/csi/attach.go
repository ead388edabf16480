package csi

import (
	"context"
	"errors"
	"fmt"

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrNotAttached is returned while a volume's VolumeAttachment does not
// yet report it attached; the pod's next sync tries again.
var ErrNotAttached = errors.New("volume not attached yet")

// AttachmentName is the VolumeAttachment name for a volume on a node, as
// upstream's attacher and kubelet compute it.
func AttachmentName(handle, driver, node string) string {
	return "csi-" + sha256Hex(handle+driver+node)
}

// csiDriver returns the CSIDriver object, or nil when there is none.
func (m *Manager) csiDriver(ctx context.Context, name string) (*storagev1.CSIDriver, error) {
	d, err := m.cfg.Client.StorageV1().CSIDrivers().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("csidriver %s: %w", name, err)
	}
	return d, nil
}

// attachRequired defaults to true, also when there is no CSIDriver object.
func attachRequired(d *storagev1.CSIDriver) bool {
	return d == nil || d.Spec.AttachRequired == nil || *d.Spec.AttachRequired
}

func podInfoOnMount(d *storagev1.CSIDriver) bool {
	return d != nil && d.Spec.PodInfoOnMount != nil && *d.Spec.PodInfoOnMount
}

// supportsMode says whether the driver accepts the volume lifecycle mode;
// without a CSIDriver object (or a list) only Persistent is allowed.
func supportsMode(d *storagev1.CSIDriver, mode storagev1.VolumeLifecycleMode) bool {
	if d == nil || len(d.Spec.VolumeLifecycleModes) == 0 {
		return mode == storagev1.VolumeLifecyclePersistent
	}
	for _, m := range d.Spec.VolumeLifecycleModes {
		if m == mode {
			return true
		}
	}
	return false
}

// publishContext waits for the attach/detach controller: the volume's
// VolumeAttachment must report it attached, and its metadata becomes the
// publish context of the node calls.
func (m *Manager) publishContext(ctx context.Context, s *volumeSpec) (map[string]string, error) {
	name := AttachmentName(s.handle, s.driver, m.cfg.NodeName)
	va, err := m.cfg.Client.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("volumeattachment %s: %w", name, ErrNotAttached)
	}
	if err != nil {
		return nil, fmt.Errorf("volumeattachment %s: %w", name, err)
	}
	if !va.Status.Attached {
		if e := va.Status.AttachError; e != nil {
			return nil, fmt.Errorf("volumeattachment %s: %w: %s", name, ErrNotAttached, e.Message)
		}
		return nil, fmt.Errorf("volumeattachment %s: %w", name, ErrNotAttached)
	}
	return va.Status.AttachmentMetadata, nil
}

// fsGroupPolicy defaults to ReadWriteOnceWithFSType, also when there is
// no CSIDriver object.
func fsGroupPolicy(d *storagev1.CSIDriver) storagev1.FSGroupPolicy {
	if d == nil || d.Spec.FSGroupPolicy == nil {
		return storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy
	}
	return *d.Spec.FSGroupPolicy
}
