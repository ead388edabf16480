package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry is one snapshot in a directory.
type Entry struct {
	Name     string
	Path     string
	Size     int64
	Time     time.Time
	Revision int64 // 0 when the metadata file is missing
}

// snapshotExt is the extension of snapshot files in a snapshot directory.
const snapshotExt = ".db"

// List returns the snapshots (*.db files) in dir, oldest first. A missing
// dir holds none.
func List(dir string) ([]Entry, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []Entry
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), snapshotExt) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		path := filepath.Join(dir, e.Name())
		ent := Entry{Name: e.Name(), Path: path, Size: fi.Size(), Time: fi.ModTime().UTC()}
		if m, err := ReadMetadata(path); err == nil {
			ent.Time, ent.Revision = m.Time, m.Revision
		}
		out = append(out, ent)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Prune deletes the oldest snapshots whose names start with prefix until
// keep remain, with their metadata files, and returns the paths removed.
// keep <= 0 keeps all. Snapshots saved by hand under other names are left
// alone.
func Prune(dir, prefix string, keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	var mine []Entry
	for _, e := range all {
		if strings.HasPrefix(e.Name, prefix) {
			mine = append(mine, e)
		}
	}
	var removed []string
	for _, e := range mine[:max(0, len(mine)-keep)] {
		if err := os.Remove(e.Path); err != nil && !os.IsNotExist(err) {
			return removed, fmt.Errorf("prune %s: %w", e.Path, err)
		}
		os.Remove(e.Path + MetadataSuffix)
		removed = append(removed, e.Path)
	}
	return removed, nil
}
