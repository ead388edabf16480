package kubelet

import (
	"context"
	"os"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Upstream's defaults for containerLogMaxSize and containerLogMaxFiles.
const (
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 5
	logRotatePeriod    = 10 * time.Second
)

// runLogRotation keeps each container's log under LogMaxSize: the live file
// is renamed with a timestamp, the runtime reopens a fresh one, and only
// LogMaxFiles files (live included) are kept.
func (k *Kubelet) runLogRotation(ctx context.Context) {
	t := k.clock.NewTicker(logRotatePeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		cs, err := k.runtime.runtime.ListContainers(ctx,
			&runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		if err != nil {
			continue
		}
		for _, c := range cs {
			if err := k.rotateLog(ctx, c.Id); err != nil && ctx.Err() == nil {
				k.log.Warn("rotate container log", "container", c.Id, "err", err)
			}
		}
	}
}

func (k *Kubelet) rotateLog(ctx context.Context, id string) error {
	st, err := k.runtime.containerStatus(ctx, id)
	if err != nil || st.LogPath == "" {
		return err
	}
	info, err := os.Stat(st.LogPath)
	if err != nil || info.Size() < k.cfg.LogMaxSize {
		return nil
	}
	rotated := st.LogPath + "." + k.clock.Now().UTC().Format("20060102-150405.000000")
	if err := os.Rename(st.LogPath, rotated); err != nil {
		return err
	}
	if err := k.runtime.runtime.ReopenContainerLog(ctx, id); err != nil {
		// Put the file back so the container keeps a log.
		_ = os.Rename(rotated, st.LogPath)
		return err
	}
	old := rotatedLogs(st.LogPath)
	for len(old) > k.cfg.LogMaxFiles-1 {
		os.Remove(old[0])
		old = old[1:]
	}
	return nil
}
