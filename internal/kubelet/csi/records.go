package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	// podVolumeKind is the directory under a pod's volumes holding CSI volumes.
	podVolumeKind = "kubernetes.io~csi"
	recordFile    = "vol_data.json"
)

// volumeRecord is what a set-up volume leaves on disk for its teardown:
// beside a pod's mount, or beside a staging path (StagingPath set, Pod not).
type volumeRecord struct {
	Driver      string `json:"driver"`
	Handle      string `json:"volumeHandle"`
	Ephemeral   bool   `json:"ephemeral,omitempty"`
	StagingPath string `json:"stagingPath,omitempty"`
	// Published is false while NodePublishVolume has not yet succeeded;
	// teardown unpublishes either way.
	Published bool `json:"published,omitempty"`
	// Block marks a volumeMode Block volume (block.go); TargetPath is
	// then the file it is published at, not the pod volume's "mount".
	Block      bool   `json:"block,omitempty"`
	TargetPath string `json:"targetPath,omitempty"`
}

// target is where the pod volume recorded in dir is published.
func (r *volumeRecord) target(dir string) string {
	if r.TargetPath != "" {
		return r.TargetPath
	}
	return targetPath(dir)
}

// stagedDir is the directory of the staged record of the volume that r
// (a pod volume's record) was published from.
func (m *Manager) stagedDir(r *volumeRecord) string {
	if r.Block {
		return m.blockDataDir(filepath.Base(r.StagingPath))
	}
	return filepath.Dir(r.StagingPath)
}

func (r *volumeRecord) key() string { return r.Driver + "^" + r.Handle }

// UniqueName is how node.status.volumesInUse and volumesAttached name a
// CSI volume.
func UniqueName(driver, handle string) v1.UniqueVolumeName {
	return v1.UniqueVolumeName("kubernetes.io/csi/" + driver + "^" + handle)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// stagingPath is the per-node global mount of a volume.
func (m *Manager) stagingPath(driver, handle string) string {
	return filepath.Join(m.stagingRoot(), driver, sha256Hex(handle), "globalmount")
}

func (m *Manager) stagingRoot() string {
	return filepath.Join(m.cfg.DataDir, "plugins", "kubernetes.io", "csi")
}

// PodVolumeDir is the directory of a pod's CSI volume; the driver mounts
// its "mount" subdirectory.
func (m *Manager) PodVolumeDir(uid types.UID, volume string) string {
	return filepath.Join(m.cfg.PodsDir, string(uid), "volumes", podVolumeKind, volume)
}

func targetPath(volDir string) string { return filepath.Join(volDir, "mount") }

func readRecord(dir string) (*volumeRecord, error) {
	raw, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var r volumeRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	return &r, nil
}

// writeRecord replaces dir's record through a rename, so a crash never
// leaves half a file.
func writeRecord(dir string, r *volumeRecord) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+recordFile)
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, recordFile))
}

// podRecords reads the records of every pod's CSI volumes on the node,
// by volume directory.
func (m *Manager) podRecords() map[string]*volumeRecord {
	out := map[string]*volumeRecord{}
	dirs, _ := filepath.Glob(filepath.Join(m.cfg.PodsDir, "*", "volumes", podVolumeKind, "*"))
	for _, dir := range dirs {
		if r, err := readRecord(dir); err == nil {
			out[dir] = r
		}
	}
	return out
}

// stagedRecords reads the records of the volumes staged on the node:
// beside each filesystem volume's globalmount and in each Block volume's
// data directory.
func (m *Manager) stagedRecords() []*volumeRecord {
	var out []*volumeRecord
	dirs, _ := filepath.Glob(filepath.Join(m.stagingRoot(), "*", "*"))
	blocks, _ := filepath.Glob(m.blockDataDir("*"))
	dirs = append(dirs, blocks...)
	for _, dir := range dirs {
		if r, err := readRecord(dir); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// usedElsewhere says whether a pod volume other than exceptDir uses the volume.
func (m *Manager) usedElsewhere(r *volumeRecord, exceptDir string) bool {
	for dir, other := range m.podRecords() {
		if dir != exceptDir && other.key() == r.key() {
			return true
		}
	}
	return false
}

// VolumesInUse names the persistent CSI volumes mounted or staged on the
// node, for node.status.volumesInUse: the attach/detach controller does
// not detach them. A nil Manager has none.
func (m *Manager) VolumesInUse() []v1.UniqueVolumeName {
	if m == nil {
		return nil
	}
	seen := map[v1.UniqueVolumeName]bool{}
	for _, r := range m.podRecords() {
		if !r.Ephemeral {
			seen[UniqueName(r.Driver, r.Handle)] = true
		}
	}
	for _, r := range m.stagedRecords() {
		if r.Published { // a stage that never succeeded holds no mount
			seen[UniqueName(r.Driver, r.Handle)] = true
		}
	}
	out := make([]v1.UniqueVolumeName, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
