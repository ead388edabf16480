package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Raw block volumes: a claim bound to a local or CSI PersistentVolume of
// volumeMode Block reaches containers through volumeDevices, as a device
// node the runtime creates in the container (CRI ContainerConfig.Devices).
// A local volume's path is the device; a CSI driver publishes the device
// at a file (package csi, block.go), which is handed to the runtime as is.
// As upstream, hostPath volumes have no block plugin.

// localVolumePluginDir and csiPluginDir are upstream's escaped plugin
// names, under which the pod's volumeDevices directory links each mapped
// volume.
const (
	localVolumePluginDir = "kubernetes.io~local-volume"
	csiPluginDir         = "kubernetes.io~csi"
)

// volumeModeError is a volume used against its mode: upstream reports it
// as is, without a mount or map prefix.
type volumeModeError struct{ msg string }

func (e *volumeModeError) Error() string { return e.msg }

// blockMapError is a failure to map a Block volume's device for the pod.
type blockMapError struct{ err error }

func (e *blockMapError) Error() string { return e.err.Error() }
func (e *blockMapError) Unwrap() error { return e.err }

// volumeSetupError words a volume's setup failure as upstream's kubelet
// does for its kind: mode mismatches bare, block devices as MapVolume,
// the rest as MountVolume.
func volumeSetupError(volume string, err error) error {
	var me *volumeModeError
	if errors.As(err, &me) {
		return err
	}
	var be *blockMapError
	if errors.As(err, &be) {
		return fmt.Errorf("MapVolume.MapPodDevice failed for volume %q: %w", volume, be.err)
	}
	return fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", volume, err)
}

// persistentVolumeMode is the volume's mode, Filesystem when unset.
func persistentVolumeMode(pv *v1.PersistentVolume) v1.PersistentVolumeMode {
	if pv.Spec.VolumeMode == nil {
		return v1.PersistentVolumeFilesystem
	}
	return *pv.Spec.VolumeMode
}

// checkVolumeMode refuses, in upstream's words, a Block volume in some
// container's volumeMounts and a Filesystem one in its volumeDevices.
func checkVolumeMode(pod *v1.Pod, volume string, mode v1.PersistentVolumeMode) error {
	mounted, mapped := false, false
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				mounted = mounted || m.Name == volume
			}
			for _, d := range cs[i].VolumeDevices {
				mapped = mapped || d.Name == volume
			}
		}
	}
	if mounted && mode != v1.PersistentVolumeFilesystem {
		return &volumeModeError{fmt.Sprintf("volume %s has volumeMode %s, but is specified in volumeMounts", volume, mode)}
	}
	if mapped && mode != v1.PersistentVolumeBlock {
		return &volumeModeError{fmt.Sprintf("volume %s has volumeMode %s, but is specified in volumeDevices", volume, mode)}
	}
	return nil
}

// mapBlockVolume returns the node's device behind a Block
// PersistentVolume, having a CSI driver stage and publish a CSI one, and
// links it, as upstream, at pods/<uid>/volumeDevices/<plugin>/<pv>.
// readOnly is the pod's claim reference flag.
func (v *podVolumes) mapBlockVolume(ctx context.Context, pod *v1.Pod, volume string, pv *v1.PersistentVolume, readOnly bool) (string, error) {
	switch {
	case pv.Spec.Local != nil:
	case pv.Spec.CSI != nil && v.csi != nil:
		dev, err := v.csi.MapBlock(ctx, pod, volume, pv, readOnly)
		if err != nil {
			return "", &blockMapError{err}
		}
		return dev, v.linkDevice(pod, csiPluginDir, pv.Name, dev)
	case pv.Spec.HostPath != nil:
		return "", &blockMapError{fmt.Errorf("persistentvolume %q: hostPath volumes do not support volumeMode Block (use a local volume)", pv.Name)}
	default:
		return "", &blockMapError{fmt.Errorf("persistentvolume %q: volumeMode Block is supported only for local and CSI volumes", pv.Name)}
	}
	resolve := v.blockDevice
	if resolve == nil {
		resolve = localBlockDevice
	}
	dev, err := resolve(pv.Spec.Local.Path)
	if err != nil {
		return "", &blockMapError{fmt.Errorf("local volume %q: %w", pv.Name, err)}
	}
	return dev, v.linkDevice(pod, localVolumePluginDir, pv.Name, dev)
}

// linkDevice links the pod's mapped device; the pod's directory, and the
// link with it, goes at teardown.
func (v *podVolumes) linkDevice(pod *v1.Pod, plugin, pv, dev string) error {
	link := filepath.Join(v.podsDir, string(pod.UID), "volumeDevices", plugin, pv)
	if err := ensureSymlink(dev, link); err != nil {
		return &blockMapError{err}
	}
	return nil
}

// localBlockDevice resolves path (a /dev/disk/by-* link, say) to the block
// device it names; anything else is an error, as the container would get
// no usable device.
func localBlockDevice(path string) (string, error) {
	dev, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("block device %s: %w", path, err)
	}
	info, err := os.Stat(dev)
	if err != nil {
		return "", fmt.Errorf("block device %s: %w", path, err)
	}
	if m := info.Mode(); m&os.ModeDevice == 0 || m&os.ModeCharDevice != 0 {
		return "", fmt.Errorf("%s is not a block device (volumeMode Block needs one)", path)
	}
	return dev, nil
}

// ensureSymlink makes link point at target, replacing a stale link; it
// runs at every sync.
func ensureSymlink(target, link string) error {
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o750); err != nil {
		return err
	}
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.Symlink(target, link)
}

// containerDevices passes the container's volumeDevices to the runtime.
// setupVolumes has checked that each names a Block claim, so volumes holds
// its device. As upstream, a claim referenced readOnly gives read access
// only; otherwise "mrw" (mknod, read, write).
func containerDevices(pod *v1.Pod, c *v1.Container, volumes map[string]string) ([]*runtimeapi.Device, error) {
	var out []*runtimeapi.Device
	for _, d := range c.VolumeDevices {
		if !filepath.IsAbs(d.DevicePath) {
			return nil, configErrorf("error DevicePath `%s` must be an absolute path", d.DevicePath)
		}
		var claim *v1.PersistentVolumeClaimVolumeSource
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == d.Name {
				claim = pod.Spec.Volumes[i].PersistentVolumeClaim
			}
		}
		dev, ok := volumes[d.Name]
		if !ok || claim == nil {
			return nil, configErrorf("cannot find volume %q to pass into container %q", d.Name, c.Name)
		}
		perm := "mrw"
		if claim.ReadOnly {
			perm = "r"
		}
		out = append(out, &runtimeapi.Device{ContainerPath: d.DevicePath, HostPath: dev, Permissions: perm})
	}
	return out, nil
}
