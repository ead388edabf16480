package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// nodeUnschedulable rejects cordoned nodes unless the pod tolerates the
// unschedulable taint.
type nodeUnschedulable struct{}

func (nodeUnschedulable) Name() string { return "NodeUnschedulable" }

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

func (nodeUnschedulable) Filter(s *cycleState, ni *nodeInfo) []string {
	if !ni.node.Spec.Unschedulable {
		return nil
	}
	for i := range s.pod.Spec.Tolerations {
		if s.pod.Spec.Tolerations[i].ToleratesTaint(klog.Background(), &unschedulableTaint, false) {
			return nil
		}
	}
	return []string{"node(s) were unschedulable"}
}

// nodeName honours spec.nodeName set by the user before scheduling.
type nodeName struct{}

func (nodeName) Name() string { return "NodeName" }

func (nodeName) Filter(s *cycleState, ni *nodeInfo) []string {
	if s.pod.Spec.NodeName != "" && s.pod.Spec.NodeName != ni.node.Name {
		return []string{"node(s) didn't match the requested node name"}
	}
	return nil
}

// nodePorts rejects nodes where a requested host port is taken.
type nodePorts struct{}

func (nodePorts) Name() string { return "NodePorts" }

func (nodePorts) Filter(s *cycleState, ni *nodeInfo) []string {
	for _, want := range s.hostPorts {
		for used := range ni.usedPorts {
			if used.port == want.port && used.protocol == want.protocol &&
				(used.ip == want.ip || used.ip == "0.0.0.0" || want.ip == "0.0.0.0") {
				return []string{"node(s) didn't have free ports for the requested pod ports"}
			}
		}
	}
	return nil
}

// resourcesFit checks requests against allocatable minus what is placed.
type resourcesFit struct{}

func (resourcesFit) Name() string { return "NodeResourcesFit" }

func (resourcesFit) Filter(s *cycleState, ni *nodeInfo) []string {
	var reasons []string
	a, u, r := &ni.allocatable, &ni.requested, &s.requests
	if u.pods+1 > a.pods {
		reasons = append(reasons, "Too many pods")
	}
	if r.milliCPU > 0 && u.milliCPU+r.milliCPU > a.milliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if r.memory > 0 && u.memory+r.memory > a.memory {
		reasons = append(reasons, "Insufficient memory")
	}
	if r.storage > 0 && u.storage+r.storage > a.storage {
		reasons = append(reasons, "Insufficient ephemeral-storage")
	}
	for name, want := range r.scalar {
		if want > 0 && u.scalar[name]+want > a.scalar[name] {
			reasons = append(reasons, fmt.Sprintf("Insufficient %s", name))
		}
	}
	return reasons
}

// leastAllocated prefers nodes with the most free cpu and memory.
type leastAllocated struct{ noNormalize }

func (leastAllocated) Name() string  { return "NodeResourcesFit" }
func (leastAllocated) Weight() int64 { return 1 }

func (leastAllocated) Score(s *cycleState, ni *nodeInfo) int64 {
	free := func(requested, capacity int64) int64 {
		if capacity == 0 || requested > capacity {
			return 0
		}
		return (capacity - requested) * maxNodeScore / capacity
	}
	return (free(ni.nonZeroCPU+s.nonZeroCPU, ni.allocatable.milliCPU) + free(ni.nonZeroMem+s.nonZeroMem, ni.allocatable.memory)) / 2
}

// balancedAllocation prefers nodes whose cpu and memory use stay even.
type balancedAllocation struct{ noNormalize }

func (balancedAllocation) Name() string  { return "NodeResourcesBalancedAllocation" }
func (balancedAllocation) Weight() int64 { return 1 }

func (balancedAllocation) Score(s *cycleState, ni *nodeInfo) int64 {
	if ni.allocatable.milliCPU == 0 || ni.allocatable.memory == 0 {
		return 0
	}
	cpu := min(float64(ni.nonZeroCPU+s.nonZeroCPU)/float64(ni.allocatable.milliCPU), 1)
	mem := min(float64(ni.nonZeroMem+s.nonZeroMem)/float64(ni.allocatable.memory), 1)
	// With two resources the standard deviation is half the difference.
	std := (cpu - mem) / 2
	if std < 0 {
		std = -std
	}
	return int64((1 - std) * maxNodeScore)
}

// imageLocality prefers nodes that already hold the pod's images.
type imageLocality struct{}

func (imageLocality) Name() string  { return "ImageLocality" }
func (imageLocality) Weight() int64 { return 1 }

const (
	minImageThreshold = 23 << 20
	maxImageThreshold = 1000 << 20
)

func (imageLocality) Score(s *cycleState, ni *nodeInfo) int64 {
	var sum int64
	for _, c := range s.pod.Spec.Containers {
		if size, ok := ni.images[normalizedImage(c.Image)]; ok {
			sum += size
		}
	}
	return sum
}

func (imageLocality) Normalize(scores []int64) {
	for i, s := range scores {
		switch {
		case s < minImageThreshold:
			scores[i] = 0
		case s > maxImageThreshold:
			scores[i] = maxNodeScore
		default:
			scores[i] = maxNodeScore * (s - minImageThreshold) / (maxImageThreshold - minImageThreshold)
		}
	}
}

// normalizedImage adds the :latest tag nodes report for untagged images.
func normalizedImage(image string) string {
	for i := len(image) - 1; i >= 0; i-- {
		switch image[i] {
		case ':', '@':
			return image
		case '/':
			return image + ":latest"
		}
	}
	return image + ":latest"
}
