package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Usage is one object's CPU (cores) and memory (bytes) at one moment.
type Usage struct {
	CPU    float64 `json:"cpu"`
	Memory int64   `json:"memory"`
}

// Sample is the usage of every node and pod ("namespace/name") at Time.
type Sample struct {
	Time  time.Time        `json:"time"`
	Nodes map[string]Usage `json:"nodes"`
	Pods  map[string]Usage `json:"pods"`
}

// ring keeps the last len(buf) samples.
type ring struct {
	mu   sync.RWMutex
	buf  []Sample
	next int
	full bool
}

func newRing(size int) *ring { return &ring{buf: make([]Sample, max(size, 1))} }

func (r *ring) add(s Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// since returns the samples taken after t, oldest first.
func (r *ring) since(t time.Time) []Sample {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var ordered []Sample
	if r.full {
		ordered = append(ordered, r.buf[r.next:]...)
	}
	ordered = append(ordered, r.buf[:r.next]...)
	out := ordered[:0:0]
	for _, s := range ordered {
		if s.Time.After(t) {
			out = append(out, s)
		}
	}
	return out
}

// sampler reads metrics.k8s.io as the dashboard's own identity.
type sampler struct {
	upstream *url.URL
	client   *http.Client
	interval time.Duration
	history  time.Duration
	samples  *ring
	log      *slog.Logger
	now      func() time.Time
	// keys holds each sampled pod's key string, shared by its samples;
	// only sampleOnce uses it.
	keys map[string]string
}

func newSampler(upstream *url.URL, client *http.Client, interval, history time.Duration, log *slog.Logger) *sampler {
	return &sampler{upstream: upstream, client: client, interval: interval, history: history,
		samples: newRing(int(history / interval)), log: log, now: time.Now}
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if err := s.sampleOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("dashboard: usage sample failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleOnce records the current usage of nodes and pods.
func (s *sampler) sampleOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.interval)
	defer cancel()
	var nodes, pods metricsList
	if err := s.get(ctx, "/apis/metrics.k8s.io/v1beta1/nodes", &nodes); err != nil {
		return err
	}
	if err := s.get(ctx, "/apis/metrics.k8s.io/v1beta1/pods", &pods); err != nil {
		return err
	}
	sample := Sample{Time: s.now(), Nodes: map[string]Usage{}, Pods: map[string]Usage{}}
	for _, n := range nodes.Items {
		sample.Nodes[n.Metadata.Name] = toUsage(n.Usage)
	}
	keys := make(map[string]string, len(pods.Items))
	for _, p := range pods.Items {
		if len(sample.Pods) == maxPodsPerSample {
			break
		}
		var u Usage
		for _, c := range p.Containers {
			cu := toUsage(c.Usage)
			u.CPU += cu.CPU
			u.Memory += cu.Memory
		}
		key := p.Metadata.Namespace + "/" + p.Metadata.Name
		if k, ok := s.keys[key]; ok {
			key = k // one string per pod across the history
		}
		keys[key] = key
		sample.Pods[key] = u
	}
	s.keys = keys
	s.samples.add(sample)
	return nil
}

// maxPodsPerSample bounds the history's memory (an hour of samples holds
// 240 entries per pod); pods past it are left out of the charts.
const maxPodsPerSample = 3000

// recent returns the samples of the last history period.
func (s *sampler) recent() []Sample { return s.samples.since(s.now().Add(-s.history)) }

func (s *sampler) get(ctx context.Context, path string, into any) error {
	u := *s.upstream
	u.Path = path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

// metricsList is the part of NodeMetricsList and PodMetricsList read here.
type metricsList struct {
	Items []struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Usage      map[string]resource.Quantity `json:"usage"`
		Containers []struct {
			Usage map[string]resource.Quantity `json:"usage"`
		} `json:"containers"`
	} `json:"items"`
}

func toUsage(l map[string]resource.Quantity) Usage {
	cpu, mem := l["cpu"], l["memory"]
	return Usage{CPU: float64(cpu.MilliValue()) / 1000, Memory: mem.Value()}
}
