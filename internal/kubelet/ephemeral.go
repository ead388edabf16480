package kubelet

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerTypeEphemeral marks ephemeral containers in their CRI labels.
const containerTypeEphemeral = "ephemeral"

// ephemeralContainer returns the pod's ephemeral container of that name.
func ephemeralContainer(pod *v1.Pod, name string) *v1.EphemeralContainer {
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return &pod.Spec.EphemeralContainers[i]
		}
	}
	return nil
}

// syncEphemeralContainers starts, in the pod's sandbox, the ephemeral
// containers that never ran. As upstream, an ephemeral container runs once:
// it is not restarted when it exits, nor when the sandbox is replaced.
func (k *Kubelet) syncEphemeralContainers(ctx context.Context, w *podWorker, pod *v1.Pod, sb *runtimeapi.PodSandbox,
	state *podRuntime, env *podEnv, volumes map[string]string) time.Duration {
	var next time.Duration
	for i := range pod.Spec.EphemeralContainers {
		ec := &pod.Spec.EphemeralContainers[i]
		if len(state.instances(ec.Name, "")) > 0 {
			continue
		}
		d, err := k.startContainer(ctx, w, pod, (*v1.Container)(&ec.EphemeralContainerCommon), sb, state, env, volumes, false)
		if err != nil && ctx.Err() == nil {
			k.log.Warn("start ephemeral container", "pod", podKey(pod), "container", ec.Name, "err", err)
		}
		if d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	return next
}

// adjustEphemeralConfig turns a container config built for an ephemeral
// container into one: its own type label, no resources of its own, and,
// with a target, the target container's process namespace (what
// `kubectl debug --target` relies on to see the target's processes).
func adjustEphemeralConfig(pod *v1.Pod, cfg *runtimeapi.ContainerConfig, state *podRuntime, sandboxID string) {
	ec := ephemeralContainer(pod, cfg.GetMetadata().GetName())
	if ec == nil {
		return
	}
	cfg.Labels[labelContainerType] = containerTypeEphemeral
	if cfg.Linux == nil {
		return
	}
	if r := cfg.Linux.Resources; r != nil {
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: minShares, OomScoreAdj: r.OomScoreAdj}
	}
	if ec.TargetContainerName == "" || cfg.Linux.SecurityContext == nil || cfg.Linux.SecurityContext.NamespaceOptions == nil {
		return
	}
	inst := state.instances(ec.TargetContainerName, sandboxID)
	if len(inst) == 0 || inst[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return
	}
	ns := cfg.Linux.SecurityContext.NamespaceOptions
	if ns.Pid == runtimeapi.NamespaceMode_CONTAINER {
		ns.Pid = runtimeapi.NamespaceMode_TARGET
		ns.TargetId = inst[0].Id
	}
}
