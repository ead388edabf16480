package kubelet

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// makeShared makes dir a mount point with shared propagation, so that a
// mount a CSI driver's container makes below it (mountPropagation
// Bidirectional) reaches the host and the other pods, as with upstream's
// kubelet on a systemd host whose / is rshared. Where dir is not a mount
// yet it is bind-mounted onto itself first; the returned undo removes that
// bind mount again, and is nil when dir was shared already.
func makeShared(dir string) (undo func() error, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	isMount, shared, err := mountState(f, dir)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	if shared {
		return nil, nil
	}
	if !isMount {
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return nil, fmt.Errorf("bind-mount %s onto itself: %w", dir, err)
		}
		undo = func() error { return syscall.Unmount(dir, syscall.MNT_DETACH) }
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		if undo != nil {
			_ = undo()
		}
		return nil, fmt.Errorf("make %s shared: %w", dir, err)
	}
	return undo, nil
}

// mountState reads a mountinfo table: whether dir is a mount point, and
// whether its (topmost) mount propagates as shared.
func mountState(r io.Reader, dir string) (isMount, shared bool, err error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(s.Text())
		if len(fields) < 7 || unescapeMountPath(fields[4]) != dir {
			continue
		}
		isMount, shared = true, false // a later line mounts on top
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			if strings.HasPrefix(opt, "shared:") {
				shared = true
			}
		}
	}
	return isMount, shared, s.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes of space, tab,
// newline and backslash.
func unescapeMountPath(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(p)
}
