package kubelet

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func rl(cpu, mem string) v1.ResourceList {
	l := v1.ResourceList{}
	if cpu != "" {
		l[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

func TestQOSAndCgroupResources(t *testing.T) {
	k := &Kubelet{cfg: Config{CgroupRoot: "/kubepods"}}
	for _, tc := range []struct {
		name            string
		req, lim        v1.ResourceList
		qos             v1.PodQOSClass
		parent          string
		shares, quota   int64
		memLimit, score int64
	}{
		{"best effort", nil, nil, v1.PodQOSBestEffort, "/kubepods/besteffort/poduid", 2, 0, 0, 1000},
		{"guaranteed", rl("500m", "128Mi"), rl("500m", "128Mi"), v1.PodQOSGuaranteed, "/kubepods/poduid", 512, 50000, 128 << 20, -997},
		{"limits only are guaranteed", nil, rl("1", "64Mi"), v1.PodQOSGuaranteed, "/kubepods/poduid", 1024, 100000, 64 << 20, -997},
		{"burstable", rl("100m", ""), rl("", "256Mi"), v1.PodQOSBurstable, "/kubepods/burstable/poduid", 102, 0, 256 << 20, 999},
	} {
		c := v1.Container{Name: "c", Resources: v1.ResourceRequirements{Requests: tc.req, Limits: tc.lim}}
		// The API server defaults requests to limits; so does this test.
		if c.Resources.Requests == nil && c.Resources.Limits != nil {
			c.Resources.Requests = c.Resources.Limits.DeepCopy()
		}
		pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c}}}
		pod.UID = "uid"
		if got := qosClass(pod); got != tc.qos {
			t.Errorf("%s: qos %s, want %s", tc.name, got, tc.qos)
		}
		if got := k.podCgroupParent(pod); got != tc.parent {
			t.Errorf("%s: cgroup parent %s, want %s", tc.name, got, tc.parent)
		}
		r := k.containerResources(pod, &c)
		if r.CpuShares != tc.shares || r.CpuQuota != tc.quota || r.MemoryLimitInBytes != tc.memLimit {
			t.Errorf("%s: shares %d quota %d mem %d, want %d %d %d", tc.name, r.CpuShares, r.CpuQuota, r.MemoryLimitInBytes, tc.shares, tc.quota, tc.memLimit)
		}
		if r.OomScoreAdj != tc.score {
			t.Errorf("%s: oom score %d, want %d", tc.name, r.OomScoreAdj, tc.score)
		}
	}
}
