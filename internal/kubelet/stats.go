package kubelet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Summary is the /stats/summary document, in upstream's JSON shape (the
// part of it resource metrics need).
type Summary struct {
	Node NodeStats  `json:"node"`
	Pods []PodStats `json:"pods"`
}

type NodeStats struct {
	NodeName  string       `json:"nodeName"`
	StartTime time.Time    `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
}

type PodReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

type PodStats struct {
	PodRef     PodReference     `json:"podRef"`
	StartTime  time.Time        `json:"startTime"`
	Containers []ContainerStats `json:"containers"`
	CPU        *CPUStats        `json:"cpu,omitempty"`
	Memory     *MemoryStats     `json:"memory,omitempty"`
}

type ContainerStats struct {
	Name      string       `json:"name"`
	StartTime time.Time    `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
}

type CPUStats struct {
	Time                 time.Time `json:"time"`
	UsageNanoCores       *uint64   `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64   `json:"usageCoreNanoSeconds,omitempty"`
}

type MemoryStats struct {
	Time            time.Time `json:"time"`
	AvailableBytes  *uint64   `json:"availableBytes,omitempty"`
	UsageBytes      *uint64   `json:"usageBytes,omitempty"`
	WorkingSetBytes *uint64   `json:"workingSetBytes,omitempty"`
}

// cpuSample is a cumulative CPU reading, kept to turn the next one into a
// rate.
type cpuSample struct {
	at    time.Time
	total uint64 // core-nanoseconds
	rate  uint64 // nano-cores over the last interval
}

// statsCache samples CPU every statsPeriod so that a summary has usage
// rates without waiting.
type statsCache struct {
	mu      sync.Mutex
	samples map[string]*cpuSample // by container ID, "" for the node
}

const statsPeriod = 5 * time.Second

func (s *statsCache) observe(key string, at time.Time, total uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples == nil {
		s.samples = map[string]*cpuSample{}
	}
	prev, ok := s.samples[key]
	if !ok {
		s.samples[key] = &cpuSample{at: at, total: total}
		return 0
	}
	if dt := at.Sub(prev.at); dt >= time.Second && total >= prev.total {
		prev.rate = uint64(float64(total-prev.total) / dt.Seconds())
		prev.at, prev.total = at, total
	}
	return prev.rate
}

func (s *statsCache) forget(live map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.samples {
		if k != "" && !live[k] {
			delete(s.samples, k)
		}
	}
}

// runStatsSampler keeps CPU rates fresh.
func (k *Kubelet) runStatsSampler(ctx context.Context) {
	t := k.clock.NewTicker(statsPeriod)
	defer t.Stop()
	for {
		if _, err := k.summary(ctx); err != nil && ctx.Err() == nil {
			k.log.Debug("sample stats", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// summary collects node and per-container usage from /proc and the CRI.
func (k *Kubelet) summary(ctx context.Context) (*Summary, error) {
	now := k.clock.Now()
	s := &Summary{Node: NodeStats{NodeName: k.cfg.NodeName, StartTime: bootTime(now)}}
	if busy, ok := nodeCPUNanos(); ok {
		rate := k.stats.observe("", now, busy)
		s.Node.CPU = &CPUStats{Time: now, UsageCoreNanoSeconds: &busy, UsageNanoCores: &rate}
	}
	if total, avail := memTotal(), memAvailable(); total > 0 {
		ws, a := uint64(total-avail), uint64(avail)
		s.Node.Memory = &MemoryStats{Time: now, WorkingSetBytes: &ws, UsageBytes: &ws, AvailableBytes: &a}
	}
	samples, err := k.runningContainerStats(ctx)
	if err != nil {
		return s, err
	}
	pods := map[string]*PodStats{}
	live := map[string]bool{}
	for _, sample := range samples {
		c, st := sample.Container, sample.stats
		live[c.Id] = true
		uid := c.Labels[labelPodUID]
		p := pods[uid]
		if p == nil {
			p = &PodStats{PodRef: PodReference{Name: c.Labels[labelPodName], Namespace: c.Labels[labelPodNamespace], UID: uid}, StartTime: time.Unix(0, c.CreatedAt)}
			pods[uid] = p
		}
		cstat := ContainerStats{Name: c.Metadata.GetName(), StartTime: time.Unix(0, c.CreatedAt)}
		if cpu := st.GetCpu(); cpu != nil && cpu.UsageCoreNanoSeconds != nil {
			total := cpu.UsageCoreNanoSeconds.Value
			rate := k.stats.observe(c.Id, time.Unix(0, cpu.Timestamp), total)
			cstat.CPU = &CPUStats{Time: time.Unix(0, cpu.Timestamp), UsageCoreNanoSeconds: &total, UsageNanoCores: &rate}
		}
		if mem := st.GetMemory(); mem != nil && mem.WorkingSetBytes != nil {
			ws := mem.WorkingSetBytes.Value
			cstat.Memory = &MemoryStats{Time: time.Unix(0, mem.Timestamp), WorkingSetBytes: &ws}
		}
		p.Containers = append(p.Containers, cstat)
	}
	k.stats.forget(live)
	for _, p := range pods {
		var cpuTotal, cpuRate, mem uint64
		for _, c := range p.Containers {
			if c.CPU != nil {
				cpuTotal += *c.CPU.UsageCoreNanoSeconds
				cpuRate += *c.CPU.UsageNanoCores
			}
			if c.Memory != nil {
				mem += *c.Memory.WorkingSetBytes
			}
		}
		p.CPU = &CPUStats{Time: now, UsageCoreNanoSeconds: &cpuTotal, UsageNanoCores: &cpuRate}
		p.Memory = &MemoryStats{Time: now, WorkingSetBytes: &mem}
		sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Name < p.Containers[j].Name })
		s.Pods = append(s.Pods, *p)
	}
	sort.Slice(s.Pods, func(i, j int) bool {
		a, b := s.Pods[i].PodRef, s.Pods[j].PodRef
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	return s, nil
}

// containerSample is a running container with the runtime's stats of it.
type containerSample struct {
	*runtimeapi.Container
	stats *runtimeapi.ContainerStats
}

// runningContainerStats joins the runtime's container stats with its
// running containers (whose labels name the pod); two runtime calls.
func (k *Kubelet) runningContainerStats(ctx context.Context) ([]containerSample, error) {
	stats, err := k.runtime.runtime.ListContainerStats(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("container stats: %w", err)
	}
	cs, err := k.runtime.runtime.ListContainers(ctx,
		&runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return nil, fmt.Errorf("list running containers: %w", err)
	}
	running := make(map[string]*runtimeapi.Container, len(cs))
	for _, c := range cs {
		running[c.Id] = c
	}
	out := make([]containerSample, 0, len(stats))
	for _, st := range stats {
		if c := running[st.GetAttributes().GetId()]; c != nil {
			out = append(out, containerSample{Container: c, stats: st})
		}
	}
	return out, nil
}

func (k *Kubelet) serveSummary(w http.ResponseWriter, r *http.Request) {
	s, err := k.summary(r.Context())
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

// nodeCPUNanos is the node's busy CPU time from /proc/stat, in
// core-nanoseconds.
func nodeCPUNanos() (uint64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	if !s.Scan() {
		return 0, false
	}
	fields := strings.Fields(s.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	for i, v := range fields[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += n
	}
	const userHZ = 100 // USER_HZ on Linux
	return busy * (1e9 / userHZ), true
}

func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// bootTime is now less the kernel's uptime.
func bootTime(now time.Time) time.Time {
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return time.Time{}
	}
	up, _ := strconv.ParseFloat(f[0], 64)
	return now.Add(-time.Duration(up * float64(time.Second))).Truncate(time.Second)
}
