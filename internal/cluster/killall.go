package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/skiff-dev/skiff/internal/containerd"
	"github.com/skiff-dev/skiff/internal/kubelet"
)

// KillAll cleans up after a stopped node whose containers were kept (or
// that was killed): it starts the node's containerd once more to stop and
// remove every pod through CRI (so the pod network is torn down), stops it,
// then kills whatever is left and unmounts the data dir, the kubelet's
// shared bind mount of its own dir included.
func KillAll(ctx context.Context, dataDir string, log *slog.Logger) error {
	for _, dir := range []string{filepath.Join(dataDir, "agent", "containerd"), filepath.Join(dataDir, "containerd")} {
		if _, err := os.Stat(filepath.Join(dir, "config.toml")); err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		proc, err := containerd.Start(cctx, containerd.Config{Dir: dir, CNIConfDir: filepath.Join(dir, "cni", "net.d"), Logger: log})
		if err == nil {
			if err := kubelet.RemoveAllPods(cctx, proc.Endpoint()); err != nil {
				log.Warn("remove pods", "err", err)
			}
			proc.Stop()
		} else {
			log.Warn("start containerd for cleanup", "err", err)
		}
		cancel()
		if err := containerd.Cleanup(dir); err != nil {
			return fmt.Errorf("killall: %w", err)
		}
	}
	for _, dir := range []string{filepath.Join(dataDir, "agent", "kubelet"), filepath.Join(dataDir, "kubelet")} {
		if err := containerd.UnmountAll(dir); err != nil {
			return fmt.Errorf("killall: %w", err)
		}
	}
	return nil
}
