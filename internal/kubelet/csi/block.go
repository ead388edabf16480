package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Raw block volumes. A claim bound to a CSI PersistentVolume of volumeMode
// Block is mapped, as upstream's kubelet does it (csi_block.go), with the
// paths upstream uses under <DataDir>/plugins/kubernetes.io/csi/volumeDevices:
//
//   - staging/<pv>: a directory, NodeStageVolume's staging path for a
//     driver that stages (Block capability, no fsType or mount flags);
//   - publish/<pv>/<pod uid>: a file, NodePublishVolume's target path. The
//     kubelet makes its directory and the driver the file, by the CSI spec;
//     the file is (a bind mount of) the device node, which becomes the
//     host path of the container's CRI device;
//   - <pv>/data/vol_data.json: the staged record, which upstream keeps
//     there too.
//
// The pod volume's record stays at <pods>/<uid>/volumes/kubernetes.io~csi/
// <volume>/vol_data.json with the target path in it, so teardown, which
// knows only the pod's UID, finds mapped volumes as it finds mounted ones.

// MapBlock stages and publishes a claim's Block CSI PersistentVolume for
// the pod and returns the published device file, to hand to containers
// for the pod's volumeDevices; readOnly is the pod's claim reference
// flag. It is cheap once the volume is published.
func (m *Manager) MapBlock(ctx context.Context, pod *v1.Pod, volume string, pv *v1.PersistentVolume, readOnly bool) (string, error) {
	if err := checkMode(volume, pv, v1.PersistentVolumeBlock); err != nil {
		return "", err
	}
	s, err := persistentSpec(pv, readOnly)
	if err != nil {
		return "", err
	}
	s.block, s.specName = true, pv.Name
	s.blockTarget = m.blockPublishPath(pv.Name, pod.UID)
	path, err := m.setUp(ctx, pod, volume, s)
	if err != nil {
		return "", err
	}
	// A driver that reports success must have made the file: without it
	// the runtime's error would not say which volume is at fault.
	if _, err := os.Lstat(path); err != nil {
		return "", fmt.Errorf("published block volume: %w", err)
	}
	return path, nil
}

func (m *Manager) blockRoot() string { return filepath.Join(m.stagingRoot(), "volumeDevices") }

func (m *Manager) blockStagingPath(specName string) string {
	return filepath.Join(m.blockRoot(), "staging", specName)
}

func (m *Manager) blockPublishPath(specName string, uid types.UID) string {
	return filepath.Join(m.blockRoot(), "publish", specName, string(uid))
}

func (m *Manager) blockDataDir(specName string) string {
	return filepath.Join(m.blockRoot(), specName, "data")
}

// stagingPaths are the volume's staging path and the directory of its
// staged record.
func (m *Manager) stagingPaths(s *volumeSpec) (path, recDir string) {
	if s.block {
		return m.blockStagingPath(s.specName), m.blockDataDir(s.specName)
	}
	path = m.stagingPath(s.driver, s.handle)
	return path, filepath.Dir(path)
}

// target is where the volume in the pod volume directory dir is published.
func (s *volumeSpec) target(dir string) string {
	if s.block {
		return s.blockTarget
	}
	return targetPath(dir)
}

// record is the pod volume's record before anything is staged.
func (s *volumeSpec) record() *volumeRecord {
	return &volumeRecord{Driver: s.driver, Handle: s.handle, Ephemeral: s.ephemeral, Block: s.block, TargetPath: s.blockTarget}
}

// cleanBlockTarget removes what is left of an unpublished Block volume's
// target: the file, should the driver have left it, and its directory
// once no pod's file is in it.
func cleanBlockTarget(target string) error {
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(filepath.Dir(target)); err != nil && !errors.Is(err, os.ErrNotExist) && !isNotEmpty(err) {
		return err
	}
	return nil
}

// cleanBlockStaging removes an unstaged Block volume's staging path and
// data directory (with the staged record).
func (m *Manager) cleanBlockStaging(rec *volumeRecord) error {
	if err := os.RemoveAll(rec.StagingPath); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Dir(m.stagedDir(rec)))
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}
