// Package snapshot saves, verifies, restores and schedules backups of a
// Skiff cluster's etcd.
//
// A snapshot file is etcd's own format, as `etcdctl snapshot save` writes
// it: the bolt database followed by its SHA-256. Beside FILE a small
// FILE.json records where and when it was taken. Restores go through
// etcdutl's restore, which keeps every revision (so resourceVersions carry
// on), and bump the revision and mark it compacted so that clients watching
// the old cluster get 410 Gone and relist instead of missing changes.
package snapshot

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// MetadataSuffix is appended to a snapshot's path for its metadata file.
const MetadataSuffix = ".json"

// Metadata describes a snapshot file; it is written to FILE.json.
type Metadata struct {
	SkiffVersion string    `json:"skiffVersion,omitempty"`
	ClusterID    string    `json:"clusterID"`
	Members      []Member  `json:"members"`
	Time         time.Time `json:"time"`
	// Revision is the etcd revision the snapshot holds: every write
	// acknowledged at or before it is in the file.
	Revision int64 `json:"revision"`
	// Size is the file's length in bytes, checksum included.
	Size int64 `json:"size"`
	// SHA256 is the hex checksum of the database, the file's last 32 bytes.
	SHA256 string `json:"sha256"`
	// EtcdVersion is the storage version etcd reported, when it did.
	EtcdVersion string `json:"etcdVersion,omitempty"`
}

// Member is one etcd member at the time of the snapshot.
type Member struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs,omitempty"`
	ClientURLs []string `json:"clientURLs,omitempty"`
}

// ReadMetadata reads the metadata file of the snapshot at file.
func ReadMetadata(file string) (*Metadata, error) {
	raw, err := os.ReadFile(file + MetadataSuffix)
	if err != nil {
		return nil, err
	}
	var m Metadata
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("read %s%s: %w", file, MetadataSuffix, err)
	}
	return &m, nil
}

// writeFileAtomic writes data to path.part and renames it into place, so a
// reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return os.Rename(tmp, path)
}

func jsonIndent(v any) ([]byte, error) {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(raw, '\n'), nil
}
