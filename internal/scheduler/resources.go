package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// resources is a compact resource vector: the fields the fit check reads on
// every node for every pod, kept as plain integers for speed.
type resources struct {
	milliCPU int64
	memory   int64
	storage  int64 // ephemeral-storage
	pods     int64
	scalar   map[corev1.ResourceName]int64 // extended resources
}

func (r *resources) add(o *resources) {
	r.milliCPU += o.milliCPU
	r.memory += o.memory
	r.storage += o.storage
	r.pods += o.pods
	for k, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[k] += v
	}
}

func (r *resources) sub(o *resources) {
	r.milliCPU -= o.milliCPU
	r.memory -= o.memory
	r.storage -= o.storage
	r.pods -= o.pods
	for k, v := range o.scalar {
		if r.scalar != nil {
			r.scalar[k] -= v
		}
	}
}

func fromList(l corev1.ResourceList) resources {
	var r resources
	for name, q := range l {
		r.set(name, q)
	}
	return r
}

func (r *resources) set(name corev1.ResourceName, q resource.Quantity) {
	switch name {
	case corev1.ResourceCPU:
		r.milliCPU = q.MilliValue()
	case corev1.ResourceMemory:
		r.memory = q.Value()
	case corev1.ResourceEphemeralStorage:
		r.storage = q.Value()
	case corev1.ResourcePods:
		r.pods = q.Value()
	default:
		if isExtended(name) {
			if r.scalar == nil {
				r.scalar = map[corev1.ResourceName]int64{}
			}
			r.scalar[name] = q.Value()
		}
	}
}

// isExtended reports whether name is an extended or hugepages resource
// that the fit check counts.
func isExtended(name corev1.ResourceName) bool {
	switch name {
	case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage, corev1.ResourcePods:
		return false
	}
	return true
}

func maxInto(r *resources, o resources) {
	r.milliCPU = max(r.milliCPU, o.milliCPU)
	r.memory = max(r.memory, o.memory)
	r.storage = max(r.storage, o.storage)
	for k, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[k] = max(r.scalar[k], v)
	}
}

// podRequests computes what a pod asks of a node, as upstream: the sum over
// containers (and restartable init containers, which run alongside), the
// max with each ordinary init container, plus the pod overhead. One pod
// slot is always requested.
func podRequests(pod *corev1.Pod) resources {
	var sum, sidecars resources
	for i := range pod.Spec.Containers {
		c := containerRequests(pod, &pod.Spec.Containers[i], pod.Status.ContainerStatuses)
		sum.add(&c)
	}
	var initMax resources
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		c := containerRequests(pod, ic, pod.Status.InitContainerStatuses)
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars.add(&c)
			continue
		}
		// An init container runs with the sidecars started before it.
		c.add(&sidecars)
		maxInto(&initMax, c)
	}
	sum.add(&sidecars)
	maxInto(&sum, initMax)
	if pod.Spec.Overhead != nil {
		o := fromList(pod.Spec.Overhead)
		sum.add(&o)
	}
	sum.pods = 1
	return sum
}

// containerRequests is what a container holds on its node. While an
// in-place resize is pending, the node keeps what the kubelet allocated
// (status.allocatedResources) as well: the larger of the two counts, and
// only the allocation when the node found the resize infeasible, as
// upstream's scheduler does.
func containerRequests(pod *corev1.Pod, c *corev1.Container, statuses []corev1.ContainerStatus) resources {
	spec := fromList(c.Resources.Requests)
	for i := range statuses {
		if statuses[i].Name != c.Name || statuses[i].AllocatedResources == nil {
			continue
		}
		alloc := fromList(statuses[i].AllocatedResources)
		if resizeInfeasible(pod) {
			return alloc
		}
		maxInto(&spec, alloc)
	}
	return spec
}

func resizeInfeasible(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodResizePending && c.Reason == corev1.PodReasonInfeasible {
			return true
		}
	}
	return false
}

// Non-zero defaults used for scoring pods that request nothing, so that
// best-effort pods still spread (upstream's values).
const (
	defaultMilliCPU = 100
	defaultMemory   = 200 << 20
)

func scoringRequests(r resources) (cpu, mem int64) {
	cpu, mem = r.milliCPU, r.memory
	if cpu == 0 {
		cpu = defaultMilliCPU
	}
	if mem == 0 {
		mem = defaultMemory
	}
	return cpu, mem
}
