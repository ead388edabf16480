package kubelet

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/internal/kubelet/pleg"
)

// newPLEG builds the lifecycle event generator over the kubelet's
// runtime: each pod whose runtime objects changed wakes its worker (or
// has its leftovers removed when the API no longer knows it).
func (k *Kubelet) newPLEG() *pleg.PLEG {
	return pleg.New(pleg.Config{
		Runtime:        k.runtime.runtime,
		Clock:          k.clock,
		Period:         k.cfg.PLEGPeriod,
		Changed:        k.podRuntimeChanged,
		RelistDuration: k.metrics.relist,
		RelistInterval: k.metrics.relistIntvl,
		Logger:         k.log,
	})
}

// podRuntimeChanged wakes the pod's worker, or removes the runtime objects
// of a pod that is not (or no longer) bound to this node.
func (k *Kubelet) podRuntimeChanged(ctx context.Context, uid types.UID) {
	k.workersMu.Lock()
	w := k.workers[uid]
	k.workersMu.Unlock()
	if w != nil {
		w.notify()
		return
	}
	if uid == "" || k.podKnown(uid) {
		return
	}
	go k.removeOrphan(ctx, uid)
}

func (k *Kubelet) podKnown(uid types.UID) bool {
	pods, err := k.podLister.List(everything)
	if err != nil {
		return true
	}
	for _, p := range pods {
		if p.UID == uid {
			return true
		}
	}
	return false
}

// removeOrphan stops and removes the sandboxes of a pod that no longer
// exists (deleted while the agent was down).
func (k *Kubelet) removeOrphan(ctx context.Context, uid types.UID) {
	state, err := k.runtime.podState(ctx, uid)
	if err != nil {
		return
	}
	k.log.Info("removing sandboxes of a pod that no longer exists", "uid", uid, "sandboxes", len(state.sandboxes))
	for _, c := range state.containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			_ = k.runtime.runtime.StopContainer(ctx, c.Id, 2)
		}
	}
	for _, sb := range state.sandboxes {
		_ = k.runtime.runtime.StopPodSandbox(ctx, sb.Id)
		if err := k.runtime.runtime.RemovePodSandbox(ctx, sb.Id); err != nil {
			k.log.Warn("remove orphaned sandbox", "id", sb.Id, "err", err)
		}
	}
	for _, c := range state.containers {
		_ = k.runtime.runtime.RemoveContainer(ctx, c.Id)
	}
	if err := k.teardownVolumes(uid); err != nil {
		k.log.Warn("remove orphaned pod volumes", "uid", uid, "err", err)
	}
}
