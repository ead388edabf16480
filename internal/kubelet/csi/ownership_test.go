package csi

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

const testFSGroup = 4321

// requireRoot skips tests that chown to a group the user is not in.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's group to an arbitrary fsGroup needs root")
	}
}

func gidOf(t *testing.T, path string) int {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.Sys().(*syscall.Stat_t).Gid)
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode()
}

// mkfile creates path (and its parents) with exactly mode.
func mkfile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestSetVolumeOwnershipWalksTree(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "vol")
	outside := filepath.Join(tmp, "outside")
	mkfile(t, filepath.Join(root, "sub", "inner"), 0o600)
	mkfile(t, filepath.Join(root, "top"), 0o604)
	mkfile(t, outside, 0o600)
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o705); err != nil {
		t.Fatal(err)
	}
	outsideGid := gidOf(t, outside)

	if err := setVolumeOwnership(slog.Default(), root, testFSGroup, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, filepath.Join(root, "sub"), filepath.Join(root, "sub", "inner"), filepath.Join(root, "top"), filepath.Join(root, "link")} {
		if g := gidOf(t, p); g != testFSGroup {
			t.Errorf("%s: gid = %d, want %d", p, g, testFSGroup)
		}
	}
	for path, want := range map[string]os.FileMode{
		root:                                os.ModeDir | os.ModeSetgid | 0o775, // 0705 kept, group rwx added
		filepath.Join(root, "sub"):          os.ModeDir | os.ModeSetgid | 0o770,
		filepath.Join(root, "sub", "inner"): 0o660, // no exec bit for files
		filepath.Join(root, "top"):          0o664,
	} {
		if got := modeOf(t, path); got != want {
			t.Errorf("%s: mode = %v, want %v", path, got, want)
		}
	}
	// The symlink's target outside the volume is not touched.
	if g, m := gidOf(t, outside), modeOf(t, outside); g != outsideGid || m != 0o600 {
		t.Errorf("symlink target changed: gid %d mode %v", g, m)
	}
}

func TestSetVolumeOwnershipOnRootMismatch(t *testing.T) {
	requireRoot(t)
	onRoot := ptr.To(v1.FSGroupChangeOnRootMismatch)
	for _, tc := range []struct {
		name     string
		rootMode os.FileMode
		policy   *v1.PodFSGroupChangePolicy
		walks    bool
	}{
		{"root matches", 0o770 | os.ModeSetgid, onRoot, false},
		{"root lacks setgid", 0o770, onRoot, true},
		{"root lacks group write", 0o750 | os.ModeSetgid, onRoot, true},
		{"Always ignores a matching root", 0o770 | os.ModeSetgid, ptr.To(v1.FSGroupChangeAlways), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "vol")
			inner := filepath.Join(root, "inner")
			mkfile(t, inner, 0o600)
			if err := os.Chown(root, -1, testFSGroup); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(root, tc.rootMode); err != nil {
				t.Fatal(err)
			}
			before := gidOf(t, inner)

			if err := setVolumeOwnership(slog.Default(), root, testFSGroup, tc.policy); err != nil {
				t.Fatal(err)
			}
			if walked := gidOf(t, inner) == testFSGroup; walked != tc.walks {
				t.Errorf("inner file gid %d -> %d: walked = %v, want %v", before, gidOf(t, inner), walked, tc.walks)
			}
		})
	}
}

func TestSetVolumeOwnershipMissingRoot(t *testing.T) {
	err := setVolumeOwnership(slog.Default(), filepath.Join(t.TempDir(), "gone"), testFSGroup, nil)
	if err == nil {
		t.Fatal("no error for a volume root that does not exist")
	}
}
