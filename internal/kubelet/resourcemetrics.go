package kubelet

import (
	"context"
	"time"
)

// writeResourceMetrics writes /metrics/resource, upstream's resource
// metrics endpoint that metrics-server scrapes: the summary's CPU and
// memory of the node, pods and containers, stamped with the time they
// were read, with upstream's names, help texts and labels.
func (k *Kubelet) writeResourceMetrics(e *exposition) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := k.summary(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	nodeCPU := e.family("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds", "counter")
	nodeMem := e.family("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes", "gauge")
	ctrStart := e.family("container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds", "gauge")
	ctrCPU := e.family("container_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the container in core-seconds", "counter")
	ctrMem := e.family("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes", "gauge")
	podCPU := e.family("pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", "counter")
	podMem := e.family("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes", "gauge")
	e.family("scrape_error", "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise", "gauge").add(failed, time.Time{})
	e.family("resource_scrape_error", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", "gauge").add(failed, time.Time{})
	if err != nil {
		return // as upstream: no partial series
	}
	cpu := func(f *family, st *CPUStats, labels ...string) {
		if st != nil && st.UsageCoreNanoSeconds != nil {
			f.add(float64(*st.UsageCoreNanoSeconds)/1e9, st.Time, labels...)
		}
	}
	mem := func(f *family, st *MemoryStats, labels ...string) {
		if st != nil && st.WorkingSetBytes != nil {
			f.add(float64(*st.WorkingSetBytes), st.Time, labels...)
		}
	}
	cpu(nodeCPU, s.Node.CPU)
	mem(nodeMem, s.Node.Memory)
	for _, p := range s.Pods {
		ref := p.PodRef
		for _, c := range p.Containers {
			if c.StartTime.Unix() > 0 {
				ctrStart.add(float64(c.StartTime.UnixNano())/1e9, time.Time{}, "container", c.Name, "pod", ref.Name, "namespace", ref.Namespace)
			}
			cpu(ctrCPU, c.CPU, "container", c.Name, "pod", ref.Name, "namespace", ref.Namespace)
			mem(ctrMem, c.Memory, "container", c.Name, "pod", ref.Name, "namespace", ref.Namespace)
		}
		cpu(podCPU, p.CPU, "pod", ref.Name, "namespace", ref.Namespace)
		mem(podMem, p.Memory, "pod", ref.Name, "namespace", ref.Namespace)
	}
}
