package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Block volumes. A volume staged with a Block capability is backed by a
// sparse file of its capacity, <state-dir>/devices/<id>, attached to a
// loop device; publishing bind-mounts the loop device's node onto the
// target file, which the runtime then hands to containers as a device
// (runc wants a real device node there, not a file). The image has no
// losetup, so the driver does losetup's work with the loop ioctls, and
// makes the loop device's node in devDir (the container's /dev holds only
// the nodes there were when it started).

// blockDevices holds the loop devices' nodes and where sysfs is; tests
// point them at temporary directories.
type blockDevices struct {
	devDir, sysDir string
}

func (s *state) blockFile(id string) string { return filepath.Join(s.dir, "devices", id) }

// ensureBlockFile creates the volume's backing file at its capacity
// (defaultCapacity for a volume made by hand) if there is none.
func (s *state) ensureBlockFile(id string) error {
	path := s.blockFile(id)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	size, _, err := s.capacity(id)
	if err != nil {
		return err
	}
	if size == 0 {
		size = defaultCapacity
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size) // sparse: no space used until written
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loopOf returns the loop device (as "loopN") that file is attached to,
// or "" when there is none, from sysfs.
func (b *blockDevices) loopOf(file string) (string, error) {
	files, err := filepath.Glob(filepath.Join(b.sysDir, "block", "loop*", "loop", "backing_file"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		if strings.TrimSpace(string(raw)) == file {
			return filepath.Base(filepath.Dir(filepath.Dir(f))), nil
		}
	}
	return "", nil
}

// node returns the path of the loop device's node in devDir, making it
// from the device number sysfs reports if it is missing.
func (b *blockDevices) node(loop string) (string, error) {
	path := filepath.Join(b.devDir, loop)
	if info, err := os.Stat(path); err == nil && info.Mode()&os.ModeDevice != 0 {
		return path, nil
	}
	raw, err := os.ReadFile(filepath.Join(b.sysDir, "block", loop, "dev"))
	if err != nil {
		return "", err
	}
	major, minor, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
	maj, err1 := strconv.ParseUint(major, 10, 32)
	mnr, err2 := strconv.ParseUint(minor, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("%s: bad device number %q", loop, raw)
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(maj), uint32(mnr)))); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("mknod %s: %w", path, err)
	}
	return path, nil
}

// attach attaches file to a free loop device unless it is attached, and
// returns the device's node.
func (b *blockDevices) attach(file string) (string, error) {
	if loop, err := b.loopOf(file); err != nil || loop != "" {
		if err != nil {
			return "", err
		}
		return b.node(loop)
	}
	ctl, err := os.OpenFile(filepath.Join(b.devDir, "loop-control"), os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	backing, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer backing.Close()
	// Another process may take the free device first: then ask again.
	for range 5 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		path, err := b.node("loop" + strconv.Itoa(n))
		if err != nil {
			return "", err
		}
		dev, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		err = unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(backing.Fd()))
		dev.Close()
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("LOOP_SET_FD %s: %w", path, err)
		}
		return path, nil
	}
	return "", errors.New("no free loop device")
}

// detach detaches file's loop device, if it has one.
func (b *blockDevices) detach(file string) error {
	loop, err := b.loopOf(file)
	if err != nil || loop == "" {
		return err
	}
	path, err := b.node(loop)
	if err != nil {
		return err
	}
	dev, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer dev.Close()
	if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("LOOP_CLR_FD %s: %w", path, err)
	}
	return nil
}

// stageBlock attaches the volume's backing file; the staging directory
// is left empty.
func (n *node) stageBlock(id string) error {
	if err := n.state.ensureBlockFile(id); err != nil {
		return status.Errorf(codes.Internal, "stage %q: %v", id, err)
	}
	if _, err := n.devices.attach(n.state.blockFile(id)); err != nil {
		return status.Errorf(codes.Internal, "stage %q: %v", id, err)
	}
	return nil
}

// publishBlock bind-mounts the staged volume's loop device onto the
// target file, creating the file.
func (n *node) publishBlock(id, target string, readOnly bool) error {
	loop, err := n.devices.loopOf(n.state.blockFile(id))
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if loop == "" {
		return status.Errorf(codes.FailedPrecondition, "volume %q is not staged: no loop device backs it", id)
	}
	if mounted, err := isMountPoint(target); err != nil || mounted {
		return err
	}
	dev, err := n.devices.node(loop)
	if err != nil {
		return status.Errorf(codes.Internal, "publish %q: %v", id, err)
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return status.Errorf(codes.Internal, "publish %q: %v", id, err)
	}
	f.Close()
	if err := bindOnto(dev, target, readOnly); err != nil {
		return status.Errorf(codes.Internal, "publish %q: %v", id, err)
	}
	return nil
}
