package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/skiff-dev/skiff/internal/storage"
)

// ResetEmbedded turns the embedded etcd data at etcdDir into a new
// single-member cluster, as k3s's --cluster-reset: from the snapshot at
// restoreFile when given, else from the data already there (started once,
// so its WAL is replayed, and snapshotted). Revisions are kept and bumped
// past, and the old data is kept beside the new as ETCDDIR.old-TIME.
func ResetEmbedded(ctx context.Context, etcdDir, restoreFile string, log *slog.Logger) (*RestoreResult, error) {
	if log == nil {
		log = slog.Default()
	}
	if restoreFile == "" {
		if !hasData(etcdDir) {
			return nil, fmt.Errorf("cluster reset: %s holds no etcd data; give --cluster-reset-restore-path", etcdDir)
		}
		tmp, err := os.CreateTemp(filepath.Dir(etcdDir), "cluster-reset-*.db")
		if err != nil {
			return nil, fmt.Errorf("cluster reset: %w", err)
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		defer os.Remove(tmp.Name() + MetadataSuffix)
		if err := snapshotStopped(ctx, etcdDir, tmp.Name()); err != nil {
			return nil, fmt.Errorf("cluster reset: %w", err)
		}
		restoreFile = tmp.Name()
	}
	return Restore(restoreFile, etcdDir, RestoreOptions{Force: true, Logger: log})
}

// snapshotStopped starts the embedded etcd at dir alone, saves a snapshot
// of it to file and stops it again.
func snapshotStopped(ctx context.Context, dir, file string) error {
	if running(dir) {
		return fmt.Errorf("%s belongs to a running server; stop it first", dir)
	}
	e, err := storage.StartEmbedded(ctx, dir)
	if err != nil {
		return err
	}
	defer e.Close()
	_, err = Save(ctx, e.Client, file, SaveOptions{})
	return err
}
