package csi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/apimachinery/pkg/types"
)

// TearDownPod unpublishes every CSI volume of the pod, and unstages those
// no other pod on the node uses. It succeeds only when nothing is left
// mounted under the pod's CSI volumes, so the caller may then delete the
// pod's directory.
func (m *Manager) TearDownPod(ctx context.Context, uid types.UID) error {
	root := filepath.Join(m.cfg.PodsDir, string(uid), "volumes", podVolumeKind)
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := m.tearDown(ctx, filepath.Join(root, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("CSI volume %q: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) tearDown(ctx context.Context, dir string) error {
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) {
		if target := targetPath(dir); isMountPoint(target) {
			return fmt.Errorf("%s is mounted but has no record of its driver", target)
		}
		return os.RemoveAll(dir)
	}
	if err != nil {
		return err
	}
	target := rec.target(dir)
	unlock := m.locks.lock(rec.key())
	defer unlock()
	d, err := m.drivers.get(rec.Driver)
	if err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := d.node.NodeUnpublishVolume(callCtx, &csipb.NodeUnpublishVolumeRequest{
		VolumeId: rec.Handle, TargetPath: target,
	}); err != nil {
		return fmt.Errorf("NodeUnpublishVolume: %w", err)
	}
	if isMountPoint(target) {
		return fmt.Errorf("%s is still mounted after NodeUnpublishVolume", target)
	}
	if rec.Block {
		if err := cleanBlockTarget(target); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	m.forgetPublished(dir)
	if rec.StagingPath == "" || m.usedElsewhere(rec, dir) {
		return nil
	}
	return m.unstage(callCtx, d, rec)
}

// unstage undoes NodeStageVolume once the last pod volume is gone. The
// caller holds the volume's lock.
func (m *Manager) unstage(ctx context.Context, d *driver, rec *volumeRecord) error {
	if _, err := d.node.NodeUnstageVolume(ctx, &csipb.NodeUnstageVolumeRequest{
		VolumeId: rec.Handle, StagingTargetPath: rec.StagingPath,
	}); err != nil {
		return fmt.Errorf("NodeUnstageVolume: %w", err)
	}
	if isMountPoint(rec.StagingPath) {
		return fmt.Errorf("%s is still mounted after NodeUnstageVolume", rec.StagingPath)
	}
	if rec.Block {
		return m.cleanBlockStaging(rec)
	}
	return os.RemoveAll(m.stagedDir(rec))
}

// isMountPoint says whether dir is a mount point in this mount namespace.
func isMountPoint(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}
