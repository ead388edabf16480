package kubelet

import (
	"path"
	"runtime"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	cpuPeriod    = 100000 // µs, the CFS default upstream uses
	minShares    = 2
	sharesPerCPU = 1024
)

// qosClass classifies a pod as upstream does: Guaranteed when every
// container's cpu and memory limits equal its requests, BestEffort when no
// container asks for anything, Burstable otherwise.
func qosClass(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	any, guaranteed := false, true
	all := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if hasReq && !req.IsZero() || hasLim && !lim.IsZero() {
				any = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return v1.PodQOSBestEffort
	case guaranteed:
		return v1.PodQOSGuaranteed
	default:
		return v1.PodQOSBurstable
	}
}

// podCgroupParent is the pod's cgroup under the QoS tier, the cgroupfs
// layout upstream uses (kubepods/burstable/pod<uid>).
func (k *Kubelet) podCgroupParent(pod *v1.Pod) string {
	pod_ := "pod" + string(pod.UID)
	switch qosClass(pod) {
	case v1.PodQOSGuaranteed:
		return path.Join(k.cfg.CgroupRoot, pod_)
	case v1.PodQOSBestEffort:
		return path.Join(k.cfg.CgroupRoot, "besteffort", pod_)
	default:
		return path.Join(k.cfg.CgroupRoot, "burstable", pod_)
	}
}

// containerResources maps the container's allocated requests and limits
// (its spec's, unless a resize is pending) onto cgroup settings, with an
// OOM score by QoS class.
func (k *Kubelet) containerResources(pod *v1.Pod, c *v1.Container) *runtimeapi.LinuxContainerResources {
	r := linuxResources(k.allocatedResources(pod, c))
	r.OomScoreAdj = oomScoreAdj(pod, c, memTotal())
	return r
}

// linuxResources maps requests and limits onto cgroup settings: cpu shares
// from the request, CFS quota from the limit, the memory limit.
func linuxResources(res v1.ResourceRequirements) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{CpuShares: minShares}
	cpuReq, hasReq := res.Requests[v1.ResourceCPU]
	cpuLim, hasLim := res.Limits[v1.ResourceCPU]
	if !hasReq && hasLim {
		cpuReq, hasReq = cpuLim, true
	}
	if hasReq {
		r.CpuShares = max(cpuReq.MilliValue()*sharesPerCPU/1000, minShares)
	}
	if hasLim {
		r.CpuPeriod = cpuPeriod
		r.CpuQuota = max(cpuLim.MilliValue()*cpuPeriod/1000, 1000)
	}
	if mem, ok := res.Limits[v1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = mem.Value()
	}
	return r
}

func oomScoreAdj(pod *v1.Pod, c *v1.Container, capacity int64) int64 {
	switch qosClass(pod) {
	case v1.PodQOSGuaranteed:
		return -997
	case v1.PodQOSBestEffort:
		return 1000
	}
	req := c.Resources.Requests.Memory().Value()
	if capacity <= 0 {
		return 999
	}
	adj := 1000 - (1000*req)/capacity
	return min(max(adj, 2), 999)
}

// isSidecar is an init container with restartPolicy Always: it starts in
// init order and then runs for the life of the pod.
func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && strings.EqualFold(string(*c.RestartPolicy), string(v1.ContainerRestartPolicyAlways))
}

func numCPU() int { return runtime.NumCPU() }
