package csi

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Permission bits the fsGroup gets on a volume's files, as upstream's
// SetVolumeOwnership adds them: group (and owner) read-write, plus
// search and setgid on directories so new files inherit the group.
const (
	fsGroupRW   os.FileMode = 0o660
	fsGroupExec os.FileMode = 0o110
)

// slowOwnership is when a long ownership walk is worth a warning.
const slowOwnership = 30 * time.Second

// setVolumeOwnership gives the tree at dir to the pod's fsGroup the way
// upstream's kubelet does: each file's group becomes fsGroup and gains
// read-write, directories also search and setgid. Symlinks are not
// followed. With policy OnRootMismatch the walk is skipped when the root
// already has the group and permissions; the root is changed last, so an
// interrupted walk is redone. Failures to chown or chmod single files are
// logged, not returned (upstream too): a pod should not be kept from its
// volume by a file it may never read.
func setVolumeOwnership(log *slog.Logger, dir string, fsGroup int64, policy *v1.PodFSGroupChangePolicy) error {
	if policy != nil && *policy == v1.FSGroupChangeOnRootMismatch && !needsOwnershipChange(dir, fsGroup) {
		log.Debug("volume ownership already matches fsGroup", "path", dir, "fsGroup", fsGroup)
		return nil
	}
	timer := time.AfterFunc(slowOwnership, func() {
		log.Warn("setting volume ownership for fsGroup is slow; fsGroupChangePolicy OnRootMismatch avoids it for volumes already owned", "path", dir, "fsGroup", fsGroup)
	})
	defer timer.Stop()

	var failed int
	var firstErr error
	err := walkPostOrder(dir, func(path string, info os.FileInfo) {
		if err := changeFileOwnership(path, info, int(fsGroup)); err != nil {
			if failed == 0 {
				firstErr = err
			}
			failed++
		}
	})
	if failed > 0 {
		log.Warn("could not give some volume files to fsGroup", "path", dir, "fsGroup", fsGroup, "failed", failed, "err", firstErr)
	}
	if err != nil {
		return fmt.Errorf("set ownership of %s to fsGroup %d: %w", dir, fsGroup, err)
	}
	return nil
}

func changeFileOwnership(path string, info os.FileInfo, gid int) error {
	var errs []error
	if err := os.Lchown(path, -1, gid); err != nil {
		errs = append(errs, err)
	}
	// Chmod of a symlink changes its target, which may be outside the
	// volume or have a mode the volume plugin chose.
	if info.Mode()&os.ModeSymlink != 0 {
		return errors.Join(errs...)
	}
	mask := fsGroupRW
	if info.IsDir() {
		mask |= fsGroupExec | os.ModeSetgid
	}
	if err := os.Chmod(path, info.Mode()|mask); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// needsOwnershipChange says whether the root of a volume lacks the
// fsGroup's group, permissions or setgid bit (or cannot be read).
func needsOwnershipChange(dir string, fsGroup int64) bool {
	info, err := os.Stat(dir)
	if err != nil {
		return true
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || int64(st.Gid) != fsGroup || !info.IsDir() {
		return true
	}
	want := fsGroupRW | fsGroupExec
	return info.Mode().Perm()&want != want || info.Mode()&os.ModeSetgid == 0
}

// walkPostOrder calls fn for every file under root, without following
// symlinks, and for each directory after its contents. Errors reading
// the tree end the walk.
func walkPostOrder(root string, fn func(path string, info os.FileInfo)) error {
	info, err := os.Lstat(root)
	if err != nil {
		return err
	}
	return walkEntry(root, info, fn)
}

func walkEntry(path string, info os.FileInfo, fn func(string, os.FileInfo)) error {
	if info.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1) // unsorted: trees may be large
		f.Close()
		if err != nil {
			return err
		}
		for _, name := range names {
			child := filepath.Join(path, name)
			ci, err := os.Lstat(child)
			if err != nil {
				return err
			}
			if err := walkEntry(child, ci, fn); err != nil {
				return err
			}
		}
	}
	fn(path, info)
	return nil
}
