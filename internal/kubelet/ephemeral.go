package kubelet

import (
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
