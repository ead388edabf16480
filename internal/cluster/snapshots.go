package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skiff-dev/skiff/internal/snapshot"
)

// snapshotScheduler returns the scheduler of etcd snapshots cfg asks for,
// or nil when its schedule is empty.
func snapshotScheduler(cfg ServerConfig, client *clientv3.Client) (*snapshot.Scheduler, error) {
	if cfg.EtcdSnapshotSchedule == "" {
		return nil, nil
	}
	dir := cfg.EtcdSnapshotDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "snapshots")
	}
	return snapshot.NewScheduler(snapshot.ScheduleConfig{
		Client: client, Schedule: cfg.EtcdSnapshotSchedule, Retention: cfg.EtcdSnapshotRetention, Dir: dir,
		SkiffVersion: KubernetesVersion + "+skiff", Logger: cfg.Logger.With("component", "etcd-snapshot"),
	})
}

// ClusterReset makes the embedded etcd of the server at dataDir a new
// single-member cluster, from the snapshot at restorePath when given
// (k3s's --cluster-reset and --cluster-reset-restore-path). The server
// must be stopped; start it again without the flag afterwards.
func ClusterReset(ctx context.Context, dataDir, restorePath string, log *slog.Logger) (*snapshot.RestoreResult, error) {
	if restorePath != "" {
		if _, err := snapshot.Verify(restorePath); err != nil {
			return nil, fmt.Errorf("cluster reset: %w", err)
		}
	}
	return snapshot.ResetEmbedded(ctx, filepath.Join(dataDir, "etcd"), restorePath, log)
}
