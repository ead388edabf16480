package podautoscaler

import (
	"context"
	"fmt"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/scale"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// fakeMetrics serves pod CPU usage (milli-cores) by pod name.
type fakeMetrics struct {
	mu    sync.Mutex
	cpu   map[string]int64
	at    time.Time
	err   error
	calls int
}

func (f *fakeMetrics) set(cpu map[string]int64, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cpu, f.at = cpu, at
}

func (f *fakeMetrics) PodMetrics(_ context.Context, ns string, sel labels.Selector) ([]metricsv1beta1.PodMetrics, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	var out []metricsv1beta1.PodMetrics
	for name, milli := range f.cpu {
		out = append(out, metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Timestamp:  metav1.NewTime(f.at),
			Window:     metav1.Duration{Duration: 15 * time.Second},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "app", Usage: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(milli, resource.DecimalSI),
				corev1.ResourceMemory: *resource.NewQuantity(64<<20, resource.BinarySI),
			}}},
		})
	}
	return out, nil
}

// fakeScales is an in-memory scale subresource per group-resource,
// namespace and name.
type fakeScales struct {
	mu      sync.Mutex
	scales  map[string]*autoscalingv1.Scale
	updates []int32
	failing error
}

func newFakeScales() *fakeScales { return &fakeScales{scales: map[string]*autoscalingv1.Scale{}} }

func scaleKey(gr schema.GroupResource, ns, name string) string {
	return gr.String() + "/" + ns + "/" + name
}

func (f *fakeScales) put(gr schema.GroupResource, ns, name string, replicas int32, selector string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scales[scaleKey(gr, ns, name)] = &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
		Status:     autoscalingv1.ScaleStatus{Replicas: replicas, Selector: selector},
	}
}

func (f *fakeScales) replicas(gr schema.GroupResource, ns, name string) int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.scales[scaleKey(gr, ns, name)].Spec.Replicas
}

func (f *fakeScales) Scales(ns string) scale.ScaleInterface { return fakeScaleNS{f: f, ns: ns} }

type fakeScaleNS struct {
	f  *fakeScales
	ns string
}

func (s fakeScaleNS) Get(_ context.Context, gr schema.GroupResource, name string, _ metav1.GetOptions) (*autoscalingv1.Scale, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	sc, ok := s.f.scales[scaleKey(gr, s.ns, name)]
	if !ok {
		return nil, apierrors.NewNotFound(gr, name)
	}
	return sc.DeepCopy(), nil
}

func (s fakeScaleNS) Update(_ context.Context, gr schema.GroupResource, sc *autoscalingv1.Scale, _ metav1.UpdateOptions) (*autoscalingv1.Scale, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.failing != nil {
		return nil, s.f.failing
	}
	cur, ok := s.f.scales[scaleKey(gr, s.ns, sc.Name)]
	if !ok {
		return nil, apierrors.NewNotFound(gr, sc.Name)
	}
	cur.Spec.Replicas = sc.Spec.Replicas
	s.f.updates = append(s.f.updates, sc.Spec.Replicas)
	return cur.DeepCopy(), nil
}

func (s fakeScaleNS) Patch(context.Context, schema.GroupVersionResource, string, types.PatchType, []byte, metav1.PatchOptions) (*autoscalingv1.Scale, error) {
	return nil, fmt.Errorf("patch not supported by the fake")
}

// pod builds a running, ready pod started long ago (past the CPU
// initialization period) with one container requesting cpuMilli.
func pod(name string, cpuMilli int64, now time.Time) *corev1.Pod {
	start := metav1.NewTime(now.Add(-time.Hour))
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &start,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: start}}},
	}
}

func labelsAll() labels.Selector { return labels.Everything() }
