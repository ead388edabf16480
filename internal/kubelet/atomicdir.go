package kubelet

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// volumeFile is one file of a projected volume (configMap, secret,
// downwardAPI).
type volumeFile struct {
	data []byte
	mode os.FileMode
}

const dataDirLink = "..data"

// writeAtomicDir publishes files into dir the way upstream does, so that a
// reader never sees half an update: the files go into a fresh timestamped
// directory, the ..data symlink is swapped to it with one rename, and every
// visible name is a symlink through ..data. It reports whether anything
// changed. gid, when not negative, owns the files (fsGroup).
func writeAtomicDir(dir string, files map[string]volumeFile, gid int64) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if sameContent(dir, files) {
		return false, nil
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return false, err
	}
	for name, f := range files {
		p := filepath.Join(ts, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return false, err
		}
		if err := os.Chmod(p, f.mode); err != nil { // regardless of umask
			return false, err
		}
		if gid >= 0 {
			if err := os.Lchown(p, -1, int(gid)); err != nil {
				return false, err
			}
		}
	}
	oldTarget, _ := os.Readlink(filepath.Join(dir, dataDirLink))
	tmpLink := filepath.Join(dir, "..data_tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirLink)); err != nil {
		return false, fmt.Errorf("swap %s: %w", dataDirLink, err)
	}
	// Top-level names point through ..data; names no longer present go.
	want := map[string]bool{}
	for name := range files {
		want[strings.SplitN(name, "/", 2)[0]] = true
	}
	for top := range want {
		link := filepath.Join(dir, top)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join(dataDirLink, top) {
			continue
		}
		os.RemoveAll(link)
		if err := os.Symlink(filepath.Join(dataDirLink, top), link); err != nil {
			return false, err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name := e.Name(); !strings.HasPrefix(name, "..") && !want[name] {
			os.RemoveAll(filepath.Join(dir, name))
		}
	}
	if oldTarget != "" && oldTarget != filepath.Base(ts) {
		os.RemoveAll(filepath.Join(dir, oldTarget))
	}
	return true, nil
}

// sameContent reports whether dir/..data already holds exactly files.
func sameContent(dir string, files map[string]volumeFile) bool {
	root := filepath.Join(dir, dataDirLink)
	if _, err := os.Stat(root); err != nil {
		return false
	}
	var seen []string
	err := filepath.WalkDir(root+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		seen = append(seen, rel)
		f, ok := files[rel]
		if !ok {
			return fs.ErrNotExist
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm() != f.mode.Perm() {
			return fs.ErrNotExist
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(data, f.data) {
			return fs.ErrNotExist
		}
		return nil
	})
	return err == nil && len(seen) == len(files)
}
