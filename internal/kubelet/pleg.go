package kubelet

import (
	"context"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runPLEG is the pod lifecycle event generator: containerd 1.6 has no CRI
// event stream, so the runtime is relisted every PLEGPeriod and each pod
// whose containers changed state is woken. Sandboxes of pods the API no
// longer knows are removed.
func (k *Kubelet) runPLEG(ctx context.Context) {
	last := map[types.UID]string{}
	t := time.NewTicker(k.cfg.PLEGPeriod)
	defer t.Stop()
	for {
		start := time.Now()
		current, err := k.relist(ctx)
		if err == nil {
			k.metrics.relist.Observe(time.Since(start).Seconds())
			for uid, fp := range current {
				if last[uid] != fp {
					k.podRuntimeChanged(ctx, uid)
				}
			}
			for uid := range last {
				if _, ok := current[uid]; !ok {
					k.wakePod(uid)
				}
			}
			last = current
		} else if ctx.Err() == nil {
			k.log.Warn("relist runtime", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relist returns a fingerprint of every pod's sandboxes and containers.
func (k *Kubelet) relist(ctx context.Context) (map[types.UID]string, error) {
	sbs, err := k.runtime.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, err
	}
	cs, err := k.runtime.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	parts := map[types.UID][]string{}
	for _, s := range sbs.Items {
		uid := types.UID(s.Labels[labelPodUID])
		parts[uid] = append(parts[uid], s.Id+"="+s.State.String())
	}
	for _, c := range cs.Containers {
		uid := types.UID(c.Labels[labelPodUID])
		parts[uid] = append(parts[uid], c.Id+"="+c.State.String())
	}
	out := make(map[types.UID]string, len(parts))
	for uid, p := range parts {
		sort.Strings(p)
		out[uid] = strings.Join(p, ",")
	}
	return out, nil
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
			_, _ = k.runtime.runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id, Timeout: 2})
		}
	}
	for _, sb := range state.sandboxes {
		_, _ = k.runtime.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		if _, err := k.runtime.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			k.log.Warn("remove orphaned sandbox", "id", sb.Id, "err", err)
		}
	}
	for _, c := range state.containers {
		_, _ = k.runtime.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
	}
	if err := k.teardownVolumes(uid); err != nil {
		k.log.Warn("remove orphaned pod volumes", "uid", uid, "err", err)
	}
}
