package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The resource metrics API (metrics.k8s.io/v1beta1) is served by the API
// server itself from the kubelets' /stats/summary, so `kubectl top` works
// without installing metrics-server.

var metricsGV = schema.GroupVersion{Group: "metrics.k8s.io", Version: "v1beta1"}

// The wire shapes of k8s.io/metrics' NodeMetrics and PodMetrics.
type nodeMetrics struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Timestamp         metav1.Time         `json:"timestamp"`
	Window            metav1.Duration     `json:"window"`
	Usage             corev1.ResourceList `json:"usage"`
}

type containerMetrics struct {
	Name  string              `json:"name"`
	Usage corev1.ResourceList `json:"usage"`
}

type podMetrics struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Timestamp         metav1.Time        `json:"timestamp"`
	Window            metav1.Duration    `json:"window"`
	Containers        []containerMetrics `json:"containers"`
}

type metricsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           any `json:"items"`
}

// kubeletSummary is the part of a kubelet's /stats/summary used here.
type kubeletSummary struct {
	Node struct {
		CPU    *cpuUsage `json:"cpu"`
		Memory *memUsage `json:"memory"`
	} `json:"node"`
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Containers []struct {
			Name   string    `json:"name"`
			CPU    *cpuUsage `json:"cpu"`
			Memory *memUsage `json:"memory"`
		} `json:"containers"`
	} `json:"pods"`
}

type cpuUsage struct {
	Time           time.Time `json:"time"`
	UsageNanoCores *uint64   `json:"usageNanoCores"`
}

type memUsage struct {
	WorkingSetBytes *uint64 `json:"workingSetBytes"`
}

const metricsWindow = 5 * time.Second // the kubelet's sampling period

func usage(cpu *cpuUsage, mem *memUsage) corev1.ResourceList {
	l := corev1.ResourceList{
		corev1.ResourceCPU:    *apiresource.NewScaledQuantity(0, apiresource.Nano),
		corev1.ResourceMemory: *apiresource.NewQuantity(0, apiresource.BinarySI),
	}
	if cpu != nil && cpu.UsageNanoCores != nil {
		l[corev1.ResourceCPU] = *apiresource.NewScaledQuantity(int64(*cpu.UsageNanoCores), apiresource.Nano)
	}
	if mem != nil && mem.WorkingSetBytes != nil {
		l[corev1.ResourceMemory] = *apiresource.NewQuantity(int64(*mem.WorkingSetBytes), apiresource.BinarySI)
	}
	return l
}

// serveMetrics answers GET/LIST of nodes and pods in metrics.k8s.io.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, info requestInfo) {
	if r.Method != http.MethodGet {
		s.writeError(w, r, apierrors.NewMethodNotSupported(metricsGV.WithResource(info.resource).GroupResource(), r.Method))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var body any
	var err error
	switch info.resource {
	case "nodes":
		body, err = s.nodeMetrics(ctx, r, info.name)
	case "pods":
		body, err = s.podMetrics(ctx, r, info.namespace, info.name)
	default:
		err = apierrors.NewNotFound(metricsGV.WithResource(info.resource).GroupResource(), info.name)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// nodesMatching lists the nodes from the watch cache that match sel (and
// name, when given).
func (s *Server) nodesMatching(sel labels.Selector, name string) []*corev1.Node {
	res := s.resources[nodesGVR]
	<-res.cache.Ready()
	var out []*corev1.Node
	entries, _ := res.cache.List(res.nsPrefix(""), nil)
	for _, e := range entries {
		n := e.Obj.(*corev1.Node)
		if (name == "" || n.Name == name) && sel.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	return out
}

// summaries fetches /stats/summary from each node in parallel; nodes that
// do not answer are left out, as metrics-server does.
func (s *Server) summaries(ctx context.Context, r *http.Request, nodes []*corev1.Node) map[string]*kubeletSummary {
	out := map[string]*kubeletSummary{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func(n *corev1.Node) {
			defer wg.Done()
			u, err := s.kubeletURL(r, n.Name)
			if err != nil {
				return
			}
			u.Path = "/stats/summary"
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err != nil {
				return
			}
			resp, err := s.cfg.KubeletTransport.RoundTrip(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var sum kubeletSummary
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&sum) == nil {
				mu.Lock()
				out[n.Name] = &sum
				mu.Unlock()
			}
		}(n)
	}
	wg.Wait()
	return out
}

func (s *Server) nodeMetrics(ctx context.Context, r *http.Request, name string) (any, error) {
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	nodes := s.nodesMatching(sel, name)
	sums := s.summaries(ctx, r, nodes)
	var items []nodeMetrics
	for _, n := range nodes {
		sum := sums[n.Name]
		if sum == nil || sum.Node.CPU == nil {
			continue
		}
		items = append(items, nodeMetrics{
			TypeMeta:   metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: metricsGV.String()},
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: metav1.Now()},
			Timestamp:  metav1.NewTime(sum.Node.CPU.Time),
			Window:     metav1.Duration{Duration: metricsWindow},
			Usage:      usage(sum.Node.CPU, sum.Node.Memory),
		})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	if name != "" {
		if len(items) == 0 {
			return nil, apierrors.NewNotFound(metricsGV.WithResource("nodes").GroupResource(), name)
		}
		return items[0], nil
	}
	return metricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: metricsGV.String()}, Items: orEmpty(items)}, nil
}

func (s *Server) podMetrics(ctx context.Context, r *http.Request, ns, name string) (any, error) {
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	pods := s.resources[podsGVR]
	<-pods.cache.Ready()
	want := map[string]*corev1.Pod{}
	nodeNames := map[string]bool{}
	entries, _ := pods.cache.List(pods.nsPrefix(ns), nil)
	for _, e := range entries {
		p := e.Obj.(*corev1.Pod)
		if (ns != "" && p.Namespace != ns) || (name != "" && p.Name != name) || !sel.Matches(labels.Set(p.Labels)) || p.Spec.NodeName == "" {
			continue
		}
		want[p.Namespace+"/"+p.Name] = p
		nodeNames[p.Spec.NodeName] = true
	}
	var nodes []*corev1.Node
	for _, n := range s.nodesMatching(labels.Everything(), "") {
		if nodeNames[n.Name] {
			nodes = append(nodes, n)
		}
	}
	var items []podMetrics
	for _, sum := range s.summaries(ctx, r, nodes) {
		for _, ps := range sum.Pods {
			p := want[ps.PodRef.Namespace+"/"+ps.PodRef.Name]
			if p == nil {
				continue
			}
			pm := podMetrics{
				TypeMeta:   metav1.TypeMeta{Kind: "PodMetrics", APIVersion: metricsGV.String()},
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: metav1.Now()},
				Window:     metav1.Duration{Duration: metricsWindow},
			}
			for _, c := range ps.Containers {
				if c.CPU != nil && pm.Timestamp.IsZero() {
					pm.Timestamp = metav1.NewTime(c.CPU.Time)
				}
				pm.Containers = append(pm.Containers, containerMetrics{Name: c.Name, Usage: usage(c.CPU, c.Memory)})
			}
			items = append(items, pm)
		}
	}
	sort.Slice(items, func(i, j int) bool {
		return items[i].Namespace+"/"+items[i].Name < items[j].Namespace+"/"+items[j].Name
	})
	if name != "" {
		if len(items) == 0 {
			return nil, apierrors.NewNotFound(metricsGV.WithResource("pods").GroupResource(), name)
		}
		return items[0], nil
	}
	return metricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: metricsGV.String()}, Items: orEmpty(items)}, nil
}

func orEmpty[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}
