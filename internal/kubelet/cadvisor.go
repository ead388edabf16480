package kubelet

import (
	"context"
	"path"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeCadvisorMetrics writes /metrics/cadvisor: the series of upstream's
// embedded cAdvisor that dashboards and kube-prometheus' rules read, with
// cAdvisor's names and labels (container, id, image, name, namespace,
// pod): one series per running container, one per pod cgroup
// (container="") and the node's root cgroup (id="/"). Skiff has no
// cAdvisor; the values come from the CRI stats and the pod specs.
func (k *Kubelet) writeCadvisorMetrics(e *exposition) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := k.clock.Now()
	cpu := e.family("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", "counter")
	memWS := e.family("container_memory_working_set_bytes", "Current working set in bytes.", "gauge")
	memUsage := e.family("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", "gauge")
	memRSS := e.family("container_memory_rss", "Size of RSS in bytes.", "gauge")
	memSwap := e.family("container_memory_swap", "Container swap usage in bytes.", "gauge")
	memLimit := e.family("container_spec_memory_limit_bytes", "Memory limit for the container.", "gauge")
	cpuShares := e.family("container_spec_cpu_shares", "CPU share of the container.", "gauge")
	cpuQuota := e.family("container_spec_cpu_quota", "CPU quota of the container.", "gauge")
	cpuPeriod := e.family("container_spec_cpu_period", "CPU period of the container.", "gauge")
	start := e.family("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", "gauge")
	lastSeen := e.family("container_last_seen", "Last time a container was seen by the exporter", "gauge")

	root := cgroupLabels{id: "/"}
	if busy, ok := nodeCPUNanos(); ok {
		root.add(cpu, float64(busy)/1e9, now)
	}
	if total, avail := memTotal(), memAvailable(); total > 0 {
		root.add(memWS, float64(total-avail), now)
	}
	samples, err := k.runningContainerStats(ctx)
	if err != nil {
		k.log.Debug("cadvisor metrics", "err", err)
		return
	}
	pods := map[string]*podUsage{}
	var order []string
	for _, s := range samples {
		ns, podName, uid := s.Labels[labelPodNamespace], s.Labels[labelPodName], s.Labels[labelPodUID]
		pod, _ := k.podLister.Pods(ns).Get(podName)
		podCgroup := k.podCgroup(pod, uid)
		spec := containerSpec(pod, s.Metadata.GetName())
		l := cgroupLabels{
			container: s.Metadata.GetName(), id: path.Join(podCgroup, s.Id), image: containerImage(s.Container, spec),
			name: s.Id, namespace: ns, pod: podName,
		}
		pu := pods[uid]
		if pu == nil {
			pu = &podUsage{labels: cgroupLabels{id: podCgroup, namespace: ns, pod: podName}}
			pods[uid] = pu
			order = append(order, uid)
		}
		if c := s.stats.GetCpu(); c.GetUsageCoreNanoSeconds() != nil {
			at := time.Unix(0, c.Timestamp)
			l.add(cpu, float64(c.UsageCoreNanoSeconds.Value)/1e9, at)
			pu.cpu += c.UsageCoreNanoSeconds.Value
			pu.at = at
		}
		if mem := s.stats.GetMemory(); mem != nil {
			at := time.Unix(0, mem.Timestamp)
			for _, m := range []struct {
				f   *family
				v   *runtimeapi.UInt64Value
				sum *uint64
			}{{memWS, mem.WorkingSetBytes, &pu.ws}, {memUsage, mem.UsageBytes, &pu.usage}, {memRSS, mem.RssBytes, &pu.rss}} {
				if m.v != nil {
					l.add(m.f, float64(m.v.Value), at)
					*m.sum += m.v.Value
				}
			}
		}
		if sw := s.stats.GetSwap(); sw.GetSwapUsageBytes() != nil {
			l.add(memSwap, float64(sw.SwapUsageBytes.Value), time.Unix(0, sw.Timestamp))
		}
		if spec != nil {
			r := linuxResources(spec.Resources)
			l.add(memLimit, float64(r.MemoryLimitInBytes), time.Time{})
			l.add(cpuShares, float64(r.CpuShares), time.Time{})
			if r.CpuQuota > 0 {
				l.add(cpuQuota, float64(r.CpuQuota), time.Time{})
				l.add(cpuPeriod, float64(r.CpuPeriod), time.Time{})
			}
		}
		l.add(start, float64(s.CreatedAt)/1e9, time.Time{})
		l.add(lastSeen, float64(now.Unix()), time.Time{})
	}
	for _, uid := range order {
		pu := pods[uid]
		pu.labels.add(cpu, float64(pu.cpu)/1e9, pu.at)
		pu.labels.add(memWS, float64(pu.ws), pu.at)
		pu.labels.add(memUsage, float64(pu.usage), pu.at)
		pu.labels.add(memRSS, float64(pu.rss), pu.at)
	}
}

// cgroupLabels are one cgroup's cAdvisor labels.
type cgroupLabels struct{ container, id, image, name, namespace, pod string }

func (l cgroupLabels) add(f *family, v float64, at time.Time) {
	f.add(v, at, "container", l.container, "id", l.id, "image", l.image, "name", l.name, "namespace", l.namespace, "pod", l.pod)
}

// podUsage sums a pod's containers for its pod-cgroup series.
type podUsage struct {
	labels              cgroupLabels
	at                  time.Time
	cpu, ws, usage, rss uint64
}

// podCgroup is the pod's cgroup path (cAdvisor's id label), from its QoS
// class when the pod is known.
func (k *Kubelet) podCgroup(pod *v1.Pod, uid string) string {
	if pod != nil {
		return k.podCgroupParent(pod)
	}
	return path.Join(k.cfg.CgroupRoot, "pod"+uid)
}

// containerSpec finds a container of pod by name, nil when unknown.
func containerSpec(pod *v1.Pod, name string) *v1.Container {
	if pod == nil {
		return nil
	}
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// containerImage is the image as the user named it, as cAdvisor reports
// it, falling back to the runtime's reference.
func containerImage(c *runtimeapi.Container, spec *v1.Container) string {
	if img := c.GetImage().GetUserSpecifiedImage(); img != "" {
		return img
	}
	if spec != nil {
		return spec.Image
	}
	return c.GetImage().GetImage()
}
