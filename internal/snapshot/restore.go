package snapshot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/skiff-dev/skiff/internal/storage"
)

// DefaultRevisionBump is how far a restore moves the revision past the
// snapshot's, as upstream's restore guide suggests: more than the writes
// the lost cluster can have made after the snapshot, so revisions (and so
// resourceVersions) never go backwards for a client.
const DefaultRevisionBump = 1_000_000_000

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Force replaces existing etcd data at the target; the old directory
	// is kept beside it as TARGET.old-TIME.
	Force bool
	// RevisionBump is added to the snapshot's newest revision, which is
	// then marked compacted, so watches resuming from before it get 410
	// Gone and relist. Zero means DefaultRevisionBump.
	RevisionBump uint64
	// Member describes the restored cluster's single member. The zero
	// value is the embedded etcd's own identity (the layout `skiff
	// server` starts). Set it to restore one member of an external etcd
	// cluster (etcd's own layout, WAL under member/wal).
	Member *ExternalMember
	// Logger reports progress; nil is slog.Default().
	Logger *slog.Logger
}

// ExternalMember names one member of an external etcd cluster being
// restored, as etcdutl's --name, --initial-advertise-peer-urls,
// --initial-cluster and --initial-cluster-token.
type ExternalMember struct {
	Name, PeerURL, InitialCluster, InitialClusterToken string
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	Info
	// Dir is the restored etcd data directory.
	Dir string
	// Previous is where the replaced data went, with Force.
	Previous string
	// Revision is where the restored cluster's revision starts: the
	// snapshot's newest revision plus the bump, marked compacted.
	NextRevision int64
}

// Restore verifies file and builds from it a new etcd data directory at
// target: a new single-member cluster holding every key with its revisions
// as they were. It builds into TARGET.tmp-XXXX beside target and renames
// that into place only when complete, so a failure (bad file, full disk)
// leaves target as it was and nothing else behind.
func Restore(file, target string, opts RestoreOptions) (res *RestoreResult, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bump := opts.RevisionBump
	if bump == 0 {
		bump = DefaultRevisionBump
	}
	info, err := Verify(file)
	if err != nil {
		return nil, err
	}
	target, err = filepath.Abs(target)
	if err != nil {
		return nil, err
	}
	if running(target) {
		return nil, fmt.Errorf("%s belongs to a running server; stop it before restoring", target)
	}
	existing := hasData(target)
	if existing && !opts.Force {
		return nil, fmt.Errorf("%s already holds etcd data; restore into a new data dir, or pass --force to replace it (the old data is kept beside it)", target)
	}
	parent, base := filepath.Dir(target), filepath.Base(target)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	removeStaleTemps(parent, base)
	tmp, err := os.MkdirTemp(parent, base+tmpInfix)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	start := time.Now()
	if err := restoreInto(file, tmp, bump, opts.Member); err != nil {
		return nil, fmt.Errorf("restore %s: %w", file, err)
	}
	res = &RestoreResult{Info: info, Dir: target, NextRevision: info.Revision + int64(bump)}
	if existing {
		res.Previous = fmt.Sprintf("%s.old-%s", target, time.Now().UTC().Format("20060102T150405.000Z"))
		if err := os.Rename(target, res.Previous); err != nil {
			return nil, fmt.Errorf("restore: move the old data aside: %w", err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		if existing {
			_ = os.Rename(res.Previous, target)
		}
		return nil, fmt.Errorf("restore: %w", err)
	}
	syncDir(parent)
	log.Info("restored etcd snapshot", "file", file, "dir", target, "revision", info.Revision,
		"nextRevision", res.NextRevision, "elapsed", time.Since(start).Round(time.Millisecond))
	return res, nil
}

const tmpInfix = ".tmp-"

// restoreInto runs etcdutl's restore into the empty dir. etcdutl (or bolt
// under it) may panic on a file that passed the checksum but is damaged;
// that becomes an error.
func restoreInto(file, dir string, bump uint64, m *ExternalMember) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the database is damaged: %v", r)
		}
	}()
	cfg := etcdutl.RestoreConfig{
		SnapshotPath:  file,
		OutputDataDir: dir,
		RevisionBump:  bump,
		MarkCompacted: true,
		// Verify checked the checksum already; a second pass over the
		// database costs a second per few hundred MB.
		SkipHashCheck: true,
	}
	if m == nil {
		// StartEmbedded keeps the WAL at DIR/wal.
		cfg.Name, cfg.OutputWALDir = storage.EmbeddedMemberName, filepath.Join(dir, "wal")
		cfg.PeerURLs = []string{storage.EmbeddedPeerURL}
		cfg.InitialCluster = storage.EmbeddedMemberName + "=" + storage.EmbeddedPeerURL
		cfg.InitialClusterToken = "skiff-restore-" + randomHex(4)
	} else {
		if m.Name == "" || m.PeerURL == "" {
			return errors.New("an external member needs a name and a peer URL")
		}
		cfg.Name, cfg.PeerURLs = m.Name, []string{m.PeerURL}
		cfg.InitialCluster, cfg.InitialClusterToken = m.InitialCluster, m.InitialClusterToken
		if cfg.InitialCluster == "" {
			cfg.InitialCluster = m.Name + "=" + m.PeerURL
		}
		if cfg.InitialClusterToken == "" {
			cfg.InitialClusterToken = "etcd-cluster"
		}
	}
	return etcdutl.NewV3(zap.NewNop()).Restore(cfg)
}

// hasData says whether dir exists and holds anything.
func hasData(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

// running says whether an embedded etcd answers on the socket recorded
// in dir (a crashed server leaves the record but nothing listens).
func running(dir string) bool {
	raw, err := storage.EmbeddedClientURL(dir)
	if err != nil {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "unix" {
		return false
	}
	c, err := net.DialTimeout("unix", u.Path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// removeStaleTemps drops build dirs that an interrupted restore left.
func removeStaleTemps(parent, base string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), base+tmpInfix) {
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
