package apis

import (
	"encoding/json"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func memoryAverage(v string) autoscalingv2.MetricSpec {
	q := resource.MustParse(v)
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &q},
		},
	}
}

func fullV2() *autoscalingv2.HorizontalPodAutoscaler {
	now := metav1.Unix(1700000000, 0)
	pods := resource.MustParse("10")
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Annotations: map[string]string{"team": "a"}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](2),
			MaxReplicas:    7,
			// Other metrics come before the CPU target: the order the v1 round trip produces.
			Metrics: []autoscalingv2.MetricSpec{
				memoryAverage("100Mi"),
				{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: "qps"},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &pods},
				}},
				cpuUtilization(60),
			},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To[int32](0),
					SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
					Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15}},
				},
			},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{
			ObservedGeneration: ptr.To[int64](3),
			LastScaleTime:      &now,
			CurrentReplicas:    3,
			DesiredReplicas:    4,
			CurrentMetrics: []autoscalingv2.MetricStatus{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricStatus{
					Name:    corev1.ResourceCPU,
					Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To[int32](42), AverageValue: ptr.To(resource.MustParse("120m"))},
				},
			}},
			Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{{
				Type: autoscalingv2.AbleToScale, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: "SucceededGetScale", Message: "ok",
			}},
		},
	}
	return h
}

func TestHPAToV1CarriesWhatV1CannotExpress(t *testing.T) {
	v1, err := HPAToV1(fullV2())
	if err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(v1.Spec.TargetCPUUtilizationPercentage, 0); got != 60 {
		t.Errorf("targetCPUUtilizationPercentage = %d, want 60", got)
	}
	if got := ptr.Deref(v1.Status.CurrentCPUUtilizationPercentage, 0); got != 42 {
		t.Errorf("currentCPUUtilizationPercentage = %d, want 42", got)
	}
	if v1.Annotations["team"] != "a" {
		t.Errorf("user annotation lost: %v", v1.Annotations)
	}
	// Upstream encodes its internal behavior type, which has no JSON tags.
	wantBehavior := `{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,"PeriodSeconds":15}],"Tolerance":null},"ScaleDown":null}`
	if got := v1.Annotations[hpaBehaviorAnnotation]; got != wantBehavior {
		t.Errorf("behavior annotation\n got %s\nwant %s", got, wantBehavior)
	}
	var metrics []map[string]any
	if err := json.Unmarshal([]byte(v1.Annotations[hpaMetricsAnnotation]), &metrics); err != nil {
		t.Fatalf("metrics annotation %q: %v", v1.Annotations[hpaMetricsAnnotation], err)
	}
	if len(metrics) != 2 || metrics[0]["type"] != "Resource" || metrics[1]["type"] != "Pods" {
		t.Errorf("metrics annotation holds %v, want the memory and pods metrics only", metrics)
	}
	for _, k := range []string{hpaCurrentMetricsAnnotation, hpaConditionsAnnotation} {
		if v1.Annotations[k] == "" {
			t.Errorf("annotation %s missing", k)
		}
	}
}

func TestHPARoundTrips(t *testing.T) {
	t.Run("v2 through v1", func(t *testing.T) {
		in := fullV2()
		v1, err := HPAToV1(in)
		if err != nil {
			t.Fatal(err)
		}
		back := HPAToV2(v1)
		back.TypeMeta = in.TypeMeta
		if !equality.Semantic.DeepEqual(in, back) {
			t.Errorf("round trip changed the object:\n in %+v\nout %+v", in, back)
		}
		if fullV2().Annotations["team"] != "a" || len(in.Annotations) != 1 {
			t.Errorf("conversion modified its input: %v", in.Annotations)
		}
	})
	t.Run("v1 through v2", func(t *testing.T) {
		in := &autoscalingv1.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
			Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
				ScaleTargetRef:                 autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web", APIVersion: "apps/v1"},
				MinReplicas:                    ptr.To[int32](1),
				MaxReplicas:                    5,
				TargetCPUUtilizationPercentage: ptr.To[int32](70),
			},
			Status: autoscalingv1.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, DesiredReplicas: 2, CurrentCPUUtilizationPercentage: ptr.To[int32](33)},
		}
		v2 := HPAToV2(in)
		if len(v2.Spec.Metrics) != 1 || !isCPUUtilization(&v2.Spec.Metrics[0]) || *v2.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
			t.Fatalf("metrics = %+v, want one 70%% CPU target", v2.Spec.Metrics)
		}
		back, err := HPAToV1(v2)
		if err != nil {
			t.Fatal(err)
		}
		// The CPU status becomes a metric status, which v1 keeps in an annotation.
		delete(back.Annotations, hpaCurrentMetricsAnnotation)
		if len(back.Annotations) == 0 {
			back.Annotations = nil
		}
		back.TypeMeta = in.TypeMeta
		if !equality.Semantic.DeepEqual(in, back) {
			t.Errorf("round trip changed the object:\n in %+v\nout %+v", in, back)
		}
	})
}

func TestHPAToV2Defaults(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		cpu         *int32
		wantMetrics int
		wantCPU     int32 // 0: no CPU utilization metric expected last
	}{
		{name: "no metrics gets the 80% CPU target", wantMetrics: 1, wantCPU: 80},
		{name: "explicit CPU target", cpu: ptr.To[int32](25), wantMetrics: 1, wantCPU: 25},
		{
			name:        "annotation metrics only: no CPU default",
			annotations: map[string]string{hpaMetricsAnnotation: `[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"1Gi"}}]`},
			wantMetrics: 1,
		},
		{
			name:        "annotation metrics come before the CPU target",
			annotations: map[string]string{hpaMetricsAnnotation: `[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"1Gi"}}]`},
			cpu:         ptr.To[int32](50), wantMetrics: 2, wantCPU: 50,
		},
		{
			name:        "an unparsable annotation is ignored",
			annotations: map[string]string{hpaMetricsAnnotation: `{not json`},
			wantMetrics: 1, wantCPU: 80,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &autoscalingv1.HorizontalPodAutoscaler{
				ObjectMeta: metav1.ObjectMeta{Name: "h", Annotations: tt.annotations},
				Spec:       autoscalingv1.HorizontalPodAutoscalerSpec{MaxReplicas: 3, TargetCPUUtilizationPercentage: tt.cpu},
			}
			out := HPAToV2(in)
			if len(out.Spec.Metrics) != tt.wantMetrics {
				t.Fatalf("metrics = %+v, want %d", out.Spec.Metrics, tt.wantMetrics)
			}
			last := out.Spec.Metrics[len(out.Spec.Metrics)-1]
			if tt.wantCPU != 0 && (!isCPUUtilization(&last) || *last.Resource.Target.AverageUtilization != tt.wantCPU) {
				t.Errorf("last metric = %+v, want CPU %d%%", last, tt.wantCPU)
			}
			if _, ok := out.Annotations[hpaMetricsAnnotation]; ok {
				t.Errorf("round-trip annotation kept on the v2 object: %v", out.Annotations)
			}
		})
	}
}

func TestHPATargetsColumn(t *testing.T) {
	h := fullV2()
	// kubectl pairs specs and statuses by index, whatever their types.
	if got, want := hpaTargets(h.Spec.Metrics, h.Status.CurrentMetrics), "memory: 120m/100Mi, <unknown>/10 + 1 more..."; got != want {
		t.Errorf("targets = %q, want %q", got, want)
	}
	cpuOnly := []autoscalingv2.MetricSpec{cpuUtilization(80)}
	status := []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
		Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To[int32](5)}}}}
	if got, want := hpaTargets(cpuOnly, status), "cpu: 5%/80%"; got != want {
		t.Errorf("targets = %q, want %q", got, want)
	}
	if got, want := hpaTargets(cpuOnly, nil), "cpu: <unknown>/80%"; got != want {
		t.Errorf("targets = %q, want %q", got, want)
	}
}
