package podautoscaler

import (
	"context"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"
)

func podLister(t *testing.T, pods ...*corev1.Pod) listerscorev1.PodLister {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return listerscorev1.NewPodLister(idx)
}

func TestResourceReplicas(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pending := func(name string) *corev1.Pod {
		p := pod(name, 1000, now)
		p.Status.Phase, p.Status.Conditions, p.Status.StartTime = corev1.PodPending, nil, nil
		return p
	}
	justReady := func(name string) *corev1.Pod {
		// Started a minute ago, ready for a second: its sample (taken now,
		// over a 15 s window) still covers start-up.
		p := pod(name, 1000, now)
		p.Status.StartTime.Time = now.Add(-time.Minute)
		p.Status.Conditions[0].LastTransitionTime.Time = now.Add(-time.Second)
		return p
	}
	deleting := func(name string) *corev1.Pod {
		p := pod(name, 1000, now)
		p.DeletionTimestamp = p.Status.StartTime
		return p
	}
	tests := []struct {
		name     string
		current  int32
		target   int32
		pods     []*corev1.Pod
		usage    map[string]int64
		want     int32
		wantUtil int32
		wantErr  string
	}{
		{name: "within tolerance", current: 3, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), pod("c", 1000, now)},
			usage: map[string]int64{"a": 550, "b": 550, "c": 550}, want: 3, wantUtil: 55},
		{name: "scale up", current: 3, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), pod("c", 1000, now)},
			usage: map[string]int64{"a": 1000, "b": 1000, "c": 1000}, want: 6, wantUtil: 100},
		{name: "scale down", current: 4, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), pod("c", 1000, now), pod("d", 1000, now)},
			usage: map[string]int64{"a": 200, "b": 200, "c": 200, "d": 200}, want: 2, wantUtil: 20},
		{name: "missing sample counts as full request on the way down", current: 4, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), pod("c", 1000, now), pod("d", 1000, now)},
			usage: map[string]int64{"a": 200, "b": 200, "c": 200}, want: 4, wantUtil: 20},
		{name: "missing sample counts as zero on the way up", current: 4, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), pod("c", 1000, now), pod("d", 1000, now)},
			usage: map[string]int64{"a": 1000, "b": 1000, "c": 1000}, want: 6, wantUtil: 100},
		{name: "pending pod counts as zero on the way up", current: 3, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), pending("c")},
			usage: map[string]int64{"a": 1000, "b": 1000}, want: 4, wantUtil: 100},
		{name: "pod in its CPU initialization is not trusted", current: 3, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), justReady("c")},
			usage: map[string]int64{"a": 500, "b": 500, "c": 1000}, want: 3, wantUtil: 50},
		{name: "deleting pods are ignored", current: 3, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), deleting("c")},
			usage: map[string]int64{"a": 1000, "b": 1000, "c": 0}, want: 4, wantUtil: 100},
		{name: "unready pods do not stop a scale down", current: 3, target: 50,
			pods:  []*corev1.Pod{pod("a", 1000, now), pod("b", 1000, now), pending("c")},
			usage: map[string]int64{"a": 100, "b": 100}, want: 1, wantUtil: 10},
		{name: "no samples", current: 3, target: 50,
			pods: []*corev1.Pod{pod("a", 1000, now)}, usage: map[string]int64{},
			wantErr: "no metrics returned from resource metrics API"},
		{name: "no pods", current: 3, target: 50, usage: map[string]int64{"a": 1},
			wantErr: "no pods returned by selector"},
		{name: "only unready pods", current: 1, target: 50, pods: []*corev1.Pod{pending("a")}, usage: map[string]int64{"a": 1},
			wantErr: "did not receive metrics for targeted pods"},
		{name: "container without request", current: 1, target: 50, pods: []*corev1.Pod{pod("a", 0, now)},
			usage: map[string]int64{"a": 1}, wantErr: "missing request for cpu in container app of Pod a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range tt.pods {
				if q := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; q.IsZero() {
					delete(p.Spec.Containers[0].Resources.Requests, corev1.ResourceCPU)
				}
			}
			m := &fakeMetrics{}
			m.set(tt.usage, now)
			c := &replicaCalculator{metrics: m, pods: podLister(t, tt.pods...), clock: clocktesting.NewFakeClock(now)}
			got, err := c.resourceReplicas(context.Background(), tt.current, tt.target, corev1.ResourceCPU,
				tolerances{down: defaultTolerance, up: defaultTolerance}, "default", labels.SelectorFromSet(labels.Set{"app": "web"}), "")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.replicas != tt.want || got.utilization != tt.wantUtil {
				t.Errorf("got %d replicas at %d%%, want %d at %d%%", got.replicas, got.utilization, tt.want, tt.wantUtil)
			}
		})
	}
}

func TestRawResourceReplicas(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		current int32
		target  int64
		usage   map[string]int64
		want    int32
		wantAvg int64
	}{
		{"up", 2, 100, map[string]int64{"a": 300, "b": 300}, 6, 300},
		{"down", 2, 500, map[string]int64{"a": 100, "b": 100}, 1, 100},
		{"tolerance", 2, 100, map[string]int64{"a": 105, "b": 105}, 2, 105},
		{"missing pod at target on the way down", 2, 500, map[string]int64{"a": 100}, 2, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMetrics{}
			m.set(tt.usage, now)
			c := &replicaCalculator{metrics: m, pods: podLister(t, pod("a", 1000, now), pod("b", 1000, now)), clock: clocktesting.NewFakeClock(now)}
			got, err := c.rawResourceReplicas(context.Background(), tt.current, tt.target, corev1.ResourceCPU,
				tolerances{down: 0.1, up: 0.1}, "default", labels.Everything(), "")
			if err != nil {
				t.Fatal(err)
			}
			if got.replicas != tt.want || got.average != tt.wantAvg {
				t.Errorf("got %d at %dm, want %d at %dm", got.replicas, got.average, tt.want, tt.wantAvg)
			}
		})
	}
}

func TestToleranceFromBehavior(t *testing.T) {
	tol := tolerances{down: 0.1, up: 0.05}
	for ratio, want := range map[float64]bool{0.89: false, 0.9: true, 1.04: true, 1.06: false} {
		if tol.within(ratio) != want {
			t.Errorf("within(%v) = %v", ratio, !want)
		}
	}
}

func TestPodRequestsAndUsagePerContainer(t *testing.T) {
	now := time.Now()
	p := pod("a", 200, now)
	always := corev1.ContainerRestartPolicyAlways
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Resources: p.Spec.Containers[0].Resources})
	p.Spec.InitContainers = []corev1.Container{
		{Name: "init", Resources: corev1.ResourceRequirements{}}, // runs to completion: not counted
		{Name: "proxy", RestartPolicy: &always, Resources: p.Spec.Containers[0].Resources},
	}
	for container, want := range map[string]int64{"": 600, "app": 200, "proxy": 200} {
		got, err := podRequests([]*corev1.Pod{p}, container, corev1.ResourceCPU)
		if err != nil || got["a"] != want {
			t.Errorf("requests of %q = %v %v, want %d", container, got, err, want)
		}
	}
	m := &fakeMetrics{}
	m.set(map[string]int64{"a": 300}, now)
	usage, _, err := resourceUsage(context.Background(), m, corev1.ResourceCPU, "default", labels.Everything(), "app")
	if err != nil || usage["a"].value != 300 {
		t.Errorf("usage of app = %v %v", usage, err)
	}
	usage, _, _ = resourceUsage(context.Background(), m, corev1.ResourceCPU, "default", labels.Everything(), "other")
	if _, ok := usage["a"]; ok {
		t.Errorf("a pod without the container has a sample: %v", usage)
	}
}

func TestTolerancesOf(t *testing.T) {
	q := resource.MustParse("0.05")
	got := tolerancesOf(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{Tolerance: &q}})
	if got.up != 0.05 || got.down != defaultTolerance {
		t.Errorf("tolerances %+v", got)
	}
	if got := tolerancesOf(nil); got.up != defaultTolerance || got.down != defaultTolerance {
		t.Errorf("default tolerances %+v", got)
	}
}
