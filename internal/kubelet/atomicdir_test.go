package kubelet

import (
	"os"
	"path/filepath"
	"testing"
)

func readVolumeFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestWriteAtomicDirSwapsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string]volumeFile{
		"a":        {[]byte("one"), 0o644},
		"nested/b": {[]byte("two"), 0o600},
	}
	changed, err := writeAtomicDir(dir, files, -1)
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	if got := readVolumeFile(t, dir, "a"); got != "one" {
		t.Errorf("a = %q", got)
	}
	if got := readVolumeFile(t, dir, "nested/b"); got != "two" {
		t.Errorf("nested/b = %q", got)
	}
	if target, err := os.Readlink(filepath.Join(dir, "a")); err != nil || target != "..data/a" {
		t.Errorf("a links to %q (%v), want ..data/a", target, err)
	}
	if info, err := os.Stat(filepath.Join(dir, "nested/b")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("nested/b mode %v, %v", info.Mode(), err)
	}
	first, _ := os.Readlink(filepath.Join(dir, dataDirLink))

	// The same content again is no change and keeps the data dir.
	if changed, err := writeAtomicDir(dir, files, -1); err != nil || changed {
		t.Fatalf("rewrite of same content: changed=%v err=%v", changed, err)
	}
	if again, _ := os.Readlink(filepath.Join(dir, dataDirLink)); again != first {
		t.Errorf("..data moved from %s to %s without a change", first, again)
	}

	// An update swaps ..data, drops removed keys and the old directory.
	changed, err = writeAtomicDir(dir, map[string]volumeFile{"a": {[]byte("uno"), 0o644}}, -1)
	if err != nil || !changed {
		t.Fatalf("update: changed=%v err=%v", changed, err)
	}
	if got := readVolumeFile(t, dir, "a"); got != "uno" {
		t.Errorf("a after update = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nested")); !os.IsNotExist(err) {
		t.Errorf("removed key still visible: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Errorf("old data dir %s not removed: %v", first, err)
	}
}
