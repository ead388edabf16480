package containerd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Cleanup stops everything a containerd rooted in dir left behind: the
// daemon, its shims and their containers, and the mounts (rootfs, shm)
// under dir. It is for a node that was killed or ran with containers kept,
// before its data dir is deleted.
func Cleanup(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := stopStale(dir); err != nil {
		return err
	}
	socket := SocketPath(dir)
	procs, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	var shims []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if pp := parentPID(pid); pp > 0 {
			parent[pid] = pp
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(cmdline, []byte{0})
		if len(args) == 0 || !bytes.Contains(args[0], []byte("containerd-shim")) {
			continue
		}
		for _, a := range args {
			if string(a) == socket {
				shims = append(shims, pid)
			}
		}
	}
	// Containers first (the shims' children and theirs), then the shims.
	for _, shim := range shims {
		for pid, pp := range parent {
			if pp == shim {
				killTree(pid, parent)
			}
		}
		_ = syscall.Kill(shim, syscall.SIGKILL)
	}
	return UnmountAll(dir)
}

func killTree(pid int, parent map[int]int) {
	for child, pp := range parent {
		if pp == pid {
			killTree(child, parent)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func parentPID(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may contain spaces; fields resume after ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}

// UnmountAll detaches every mount below dir and on dir itself, deepest
// first.
func UnmountAll(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var firstErr error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && firstErr == nil && err != syscall.EINVAL {
			firstErr = fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return firstErr
}
