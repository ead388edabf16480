package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// volumeSpec is what setting up one pod volume needs, from a CSI
// PersistentVolume or an inline csi volume.
type volumeSpec struct {
	driver, handle string
	ephemeral      bool
	readOnly       bool
	fsType         string
	mountOptions   []string
	accessMode     v1.PersistentVolumeAccessMode // what the driver is told
	// accessModes are all the PV's modes; the default fsGroupPolicy
	// looks for ReadWriteOnce among them.
	accessModes   []v1.PersistentVolumeAccessMode
	attributes    map[string]string
	stageSecret   *v1.SecretReference
	publishSecret *v1.SecretReference
	// block is a volumeMode Block volume mapped for the pod (block.go):
	// the driver publishes it as the file blockTarget, and its staging
	// path is named by specName (the PersistentVolume's name), as upstream.
	block       bool
	specName    string
	blockTarget string
}

// persistentSpec describes a claim's CSI PersistentVolume; readOnly is the
// pod's claim reference flag.
func persistentSpec(pv *v1.PersistentVolume, readOnly bool) (*volumeSpec, error) {
	src := pv.Spec.CSI
	if src == nil {
		return nil, fmt.Errorf("persistentvolume %q is not a CSI volume", pv.Name)
	}
	mode := v1.ReadWriteOnce
	if len(pv.Spec.AccessModes) > 0 {
		mode = pv.Spec.AccessModes[0] // upstream uses the first mode
	}
	return &volumeSpec{
		driver: src.Driver, handle: src.VolumeHandle,
		readOnly:      readOnly || src.ReadOnly,
		fsType:        src.FSType,
		mountOptions:  pv.Spec.MountOptions,
		accessMode:    mode,
		accessModes:   pv.Spec.AccessModes,
		attributes:    src.VolumeAttributes,
		stageSecret:   src.NodeStageSecretRef,
		publishSecret: src.NodePublishSecretRef,
	}, nil
}

// checkMode refuses, in the kubelet's (and upstream's) words, a pod
// volume used in the other mode than its PersistentVolume's: the kubelet
// checks first, this keeps a caller from mounting a device or mapping a
// filesystem.
func checkMode(volume string, pv *v1.PersistentVolume, want v1.PersistentVolumeMode) error {
	mode := v1.PersistentVolumeFilesystem
	if pv.Spec.VolumeMode != nil {
		mode = *pv.Spec.VolumeMode
	}
	if mode == want {
		return nil
	}
	use := "volumeMounts"
	if want == v1.PersistentVolumeBlock {
		use = "volumeDevices"
	}
	return fmt.Errorf("volume %s has volumeMode %s, but is specified in %s", volume, mode, use)
}

// ephemeralSpec describes an inline csi volume; its handle is derived
// from the pod and volume, as upstream does.
func ephemeralSpec(pod *v1.Pod, volume string, src *v1.CSIVolumeSource) *volumeSpec {
	s := &volumeSpec{
		driver:     src.Driver,
		handle:     ephemeralHandle(pod.UID, volume),
		ephemeral:  true,
		readOnly:   src.ReadOnly != nil && *src.ReadOnly,
		accessMode: v1.ReadWriteOnce,
		// inline volumes are always mounted ReadWriteOnce (upstream too)
		accessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
		attributes:  src.VolumeAttributes,
	}
	if src.FSType != nil {
		s.fsType = *src.FSType
	}
	if src.NodePublishSecretRef != nil {
		s.publishSecret = &v1.SecretReference{Name: src.NodePublishSecretRef.Name, Namespace: pod.Namespace}
	}
	return s
}

func ephemeralHandle(uid types.UID, volume string) string {
	return "csi-" + sha256Hex(string(uid)+volume)
}

// capability is the CSI volume capability for the spec;
// multiWriter says whether the driver distinguishes single-node
// multi-writer modes. A Block volume has no fsType or mount flags.
func (s *volumeSpec) capability(multiWriter bool) *csipb.VolumeCapability {
	c := &csipb.VolumeCapability{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{
			FsType: s.fsType, MountFlags: s.mountOptions,
		}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: accessMode(s.accessMode, multiWriter)},
	}
	if s.block {
		c.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
	}
	return c
}

func accessMode(m v1.PersistentVolumeAccessMode, multiWriter bool) csipb.VolumeCapability_AccessMode_Mode {
	switch m {
	case v1.ReadOnlyMany:
		return csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
	case v1.ReadWriteMany:
		return csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	case v1.ReadWriteOncePod:
		if multiWriter {
			return csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
		}
	case v1.ReadWriteOnce:
		if multiWriter {
			return csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER
		}
	}
	return csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
}

// volumeContext is the volume's attributes plus, when the CSIDriver asks
// for podInfoOnMount, the pod's identity.
func volumeContext(s *volumeSpec, pod *v1.Pod, podInfo bool) map[string]string {
	out := maps.Clone(s.attributes)
	if !podInfo {
		return out
	}
	if out == nil {
		out = map[string]string{}
	}
	out["csi.storage.k8s.io/pod.name"] = pod.Name
	out["csi.storage.k8s.io/pod.namespace"] = pod.Namespace
	out["csi.storage.k8s.io/pod.uid"] = string(pod.UID)
	out["csi.storage.k8s.io/serviceAccount.name"] = pod.Spec.ServiceAccountName
	out["csi.storage.k8s.io/ephemeral"] = fmt.Sprint(s.ephemeral)
	return out
}

// secretData reads a secret for a CSI call; nil ref is no secret.
func (m *Manager) secretData(ctx context.Context, ref *v1.SecretReference) (map[string]string, error) {
	if ref == nil || ref.Name == "" {
		return nil, nil
	}
	if ref.Namespace == "" {
		return nil, errors.New("secret reference " + ref.Name + " has no namespace")
	}
	s, err := m.cfg.Client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	out := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out, nil
}

// kubeletAppliesFSGroup says whether the kubelet itself gives the
// published volume to the pod's fsGroup under the driver's policy, as
// upstream's supportsFSGroup decides: never for read-only mounts or
// policy None, always for File, and for the default
// ReadWriteOnceWithFSType only when the volume has an fsType and is
// ReadWriteOnce(Pod).
func (s *volumeSpec) kubeletAppliesFSGroup(policy storagev1.FSGroupPolicy) bool {
	switch {
	case s.readOnly || policy == storagev1.NoneFSGroupPolicy:
		return false
	case policy == storagev1.FileFSGroupPolicy:
		return true
	case s.fsType == "":
		return false
	}
	return slices.ContainsFunc(s.accessModes, func(m v1.PersistentVolumeAccessMode) bool {
		return m == v1.ReadWriteOnce || m == v1.ReadWriteOncePod
	})
}
