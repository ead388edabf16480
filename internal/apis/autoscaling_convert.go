package apis

import (
	"encoding/json"
	"fmt"
	"maps"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// HorizontalPodAutoscalers are stored as autoscaling/v2 and served in v1 too.
// What v1 cannot express travels in annotations, under the same keys and in
// the same shape as upstream, so that a v1 client's read-modify-write keeps it.
const (
	hpaMetricsAnnotation        = "autoscaling.alpha.kubernetes.io/metrics"
	hpaCurrentMetricsAnnotation = "autoscaling.alpha.kubernetes.io/current-metrics"
	hpaConditionsAnnotation     = "autoscaling.alpha.kubernetes.io/conditions"
	hpaBehaviorAnnotation       = "autoscaling.alpha.kubernetes.io/behavior"
	// The tolerance annotations are never written; upstream drops them on read.
	hpaScaleUpToleranceAnnotation   = "autoscaling.alpha.kubernetes.io/scale-up-tolerance"
	hpaScaleDownToleranceAnnotation = "autoscaling.alpha.kubernetes.io/scale-down-tolerance"

	// defaultCPUUtilization is the target of an HPA that names no metric.
	defaultCPUUtilization int32 = 80
)

var hpaRoundTripAnnotations = []string{
	hpaMetricsAnnotation, hpaCurrentMetricsAnnotation, hpaConditionsAnnotation,
	hpaBehaviorAnnotation, hpaScaleUpToleranceAnnotation, hpaScaleDownToleranceAnnotation,
}

// hpaStorage stores autoscaling/v1 HorizontalPodAutoscalers as v2.
var hpaStorage = &StorageForm{
	GVK: autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"),
	New: func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	ToStorage: func(obj runtime.Object) (runtime.Object, error) {
		in, ok := obj.(*autoscalingv1.HorizontalPodAutoscaler)
		if !ok {
			return nil, fmt.Errorf("want an autoscaling/v1 HorizontalPodAutoscaler, got %T", obj)
		}
		out := HPAToV2(in)
		defaultHPAv2(out) // upstream defaults every v2 object it reads back
		return out, nil
	},
	FromStorage: func(obj runtime.Object) (runtime.Object, error) {
		in, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler)
		if !ok {
			return nil, fmt.Errorf("want an autoscaling/v2 HorizontalPodAutoscaler, got %T", obj)
		}
		return HPAToV1(in)
	},
}

// withoutRoundTripAnnotations returns a copy of m without the annotations
// the conversion owns (nil when nothing else is left of a nil map).
func withoutRoundTripAnnotations(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for _, k := range hpaRoundTripAnnotations {
		delete(out, k)
	}
	return out
}

// HPAToV1 converts a v2 HorizontalPodAutoscaler to its v1 view: the CPU
// utilization target becomes targetCPUUtilizationPercentage, every other
// metric, the behavior, the metric statuses and the conditions become
// annotations.
func HPAToV1(in *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.HorizontalPodAutoscaler, error) {
	out := &autoscalingv1.HorizontalPodAutoscaler{
		TypeMeta:   in.TypeMeta,
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
	}
	out.APIVersion = autoscalingv1.SchemeGroupVersion.String()
	out.Annotations = withoutRoundTripAnnotations(out.Annotations)
	out.Spec = autoscalingv1.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv1.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
		MinReplicas:    copyPtr(in.Spec.MinReplicas),
		MaxReplicas:    in.Spec.MaxReplicas,
	}
	var others []autoscalingv1.MetricSpec
	cpuSeen := false
	for i := range in.Spec.Metrics {
		m := &in.Spec.Metrics[i]
		if isCPUUtilization(m) {
			if !cpuSeen {
				out.Spec.TargetCPUUtilizationPercentage = copyPtr(m.Resource.Target.AverageUtilization)
				cpuSeen = true
			}
			continue
		}
		others = append(others, metricSpecToV1(m))
	}

	st := &in.Status
	out.Status = autoscalingv1.HorizontalPodAutoscalerStatus{
		ObservedGeneration: copyPtr(st.ObservedGeneration),
		LastScaleTime:      st.LastScaleTime.DeepCopy(),
		CurrentReplicas:    st.CurrentReplicas,
		DesiredReplicas:    st.DesiredReplicas,
	}
	statuses := make([]autoscalingv1.MetricStatus, len(st.CurrentMetrics))
	for i := range st.CurrentMetrics {
		s := &st.CurrentMetrics[i]
		if s.Type == autoscalingv2.ResourceMetricSourceType && s.Resource != nil && s.Resource.Name == corev1.ResourceCPU &&
			s.Resource.Current.AverageUtilization != nil {
			out.Status.CurrentCPUUtilizationPercentage = copyPtr(s.Resource.Current.AverageUtilization)
		}
		statuses[i] = metricStatusToV1(s)
	}
	conditions := make([]autoscalingv1.HorizontalPodAutoscalerCondition, len(st.Conditions))
	for i, c := range st.Conditions {
		conditions[i] = autoscalingv1.HorizontalPodAutoscalerCondition{
			Type: autoscalingv1.HorizontalPodAutoscalerConditionType(c.Type), Status: c.Status,
			LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		}
	}

	set := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode annotation %s: %w", key, err)
		}
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[key] = string(b)
		return nil
	}
	if len(others) > 0 {
		if err := set(hpaMetricsAnnotation, others); err != nil {
			return nil, err
		}
	}
	if len(statuses) > 0 {
		if err := set(hpaCurrentMetricsAnnotation, statuses); err != nil {
			return nil, err
		}
	}
	if in.Spec.Behavior != nil {
		if err := set(hpaBehaviorAnnotation, behaviorToAnnotation(in.Spec.Behavior)); err != nil {
			return nil, err
		}
	}
	if len(conditions) > 0 {
		if err := set(hpaConditionsAnnotation, conditions); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// HPAToV2 converts a v1 HorizontalPodAutoscaler (and the annotations an
// earlier v2-to-v1 conversion left on it) to v2. An HPA naming no metric
// gets the 80 % CPU utilization target v1 always implied.
func HPAToV2(in *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   in.TypeMeta,
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
	}
	out.APIVersion = autoscalingv2.SchemeGroupVersion.String()
	ann := in.Annotations
	out.Annotations = withoutRoundTripAnnotations(out.Annotations)
	out.Spec = autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
		MinReplicas:    copyPtr(in.Spec.MinReplicas),
		MaxReplicas:    in.Spec.MaxReplicas,
	}
	if in.Spec.TargetCPUUtilizationPercentage != nil {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilization(*in.Spec.TargetCPUUtilizationPercentage)}
	}
	// Annotations that do not parse are ignored, as upstream does.
	if enc, ok := ann[hpaMetricsAnnotation]; ok {
		var others []autoscalingv1.MetricSpec
		if json.Unmarshal([]byte(enc), &others) == nil {
			metrics := make([]autoscalingv2.MetricSpec, 0, len(others)+1)
			for i := range others {
				metrics = append(metrics, metricSpecToV2(&others[i]))
			}
			out.Spec.Metrics = append(metrics, out.Spec.Metrics...)
		}
	}
	if enc, ok := ann[hpaBehaviorAnnotation]; ok {
		var b behaviorAnnotation
		if json.Unmarshal([]byte(enc), &b) == nil && (b.ScaleUp != nil || b.ScaleDown != nil) {
			out.Spec.Behavior = b.toV2()
		}
	}
	if len(out.Spec.Metrics) == 0 {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilization(defaultCPUUtilization)}
	}

	st := &in.Status
	out.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		ObservedGeneration: copyPtr(st.ObservedGeneration),
		LastScaleTime:      st.LastScaleTime.DeepCopy(),
		CurrentReplicas:    st.CurrentReplicas,
		DesiredReplicas:    st.DesiredReplicas,
	}
	if st.CurrentCPUUtilizationPercentage != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{
				Name:    corev1.ResourceCPU,
				Current: autoscalingv2.MetricValueStatus{AverageUtilization: copyPtr(st.CurrentCPUUtilizationPercentage)},
			},
		}}
	}
	if enc, ok := ann[hpaCurrentMetricsAnnotation]; ok {
		var statuses []autoscalingv1.MetricStatus
		if json.Unmarshal([]byte(enc), &statuses) == nil {
			out.Status.CurrentMetrics = make([]autoscalingv2.MetricStatus, len(statuses))
			for i := range statuses {
				out.Status.CurrentMetrics[i] = metricStatusToV2(&statuses[i])
			}
		}
	}
	if enc, ok := ann[hpaConditionsAnnotation]; ok {
		var conds []autoscalingv1.HorizontalPodAutoscalerCondition
		if json.Unmarshal([]byte(enc), &conds) == nil {
			out.Status.Conditions = make([]autoscalingv2.HorizontalPodAutoscalerCondition, len(conds))
			for i, c := range conds {
				out.Status.Conditions[i] = autoscalingv2.HorizontalPodAutoscalerCondition{
					Type: autoscalingv2.HorizontalPodAutoscalerConditionType(c.Type), Status: c.Status,
					LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
				}
			}
		}
	}
	return out
}

func isCPUUtilization(m *autoscalingv2.MetricSpec) bool {
	return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil &&
		m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil
}

func cpuUtilization(percent int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name:   corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(percent)},
		},
	}
}

func quantityOrZero(q *resource.Quantity) resource.Quantity {
	if q == nil {
		return resource.Quantity{}
	}
	return q.DeepCopy()
}

func copyQuantity(q *resource.Quantity) *resource.Quantity {
	if q == nil {
		return nil
	}
	c := q.DeepCopy()
	return &c
}

func metricSpecToV1(m *autoscalingv2.MetricSpec) autoscalingv1.MetricSpec {
	out := autoscalingv1.MetricSpec{Type: autoscalingv1.MetricSourceType(m.Type)}
	if s := m.Object; s != nil {
		out.Object = &autoscalingv1.ObjectMetricSource{
			Target:       autoscalingv1.CrossVersionObjectReference(s.DescribedObject),
			MetricName:   s.Metric.Name,
			TargetValue:  quantityOrZero(s.Target.Value),
			Selector:     s.Metric.Selector.DeepCopy(),
			AverageValue: copyQuantity(s.Target.AverageValue),
		}
	}
	if s := m.Pods; s != nil {
		out.Pods = &autoscalingv1.PodsMetricSource{
			MetricName: s.Metric.Name, TargetAverageValue: quantityOrZero(s.Target.AverageValue), Selector: s.Metric.Selector.DeepCopy(),
		}
	}
	if s := m.Resource; s != nil {
		out.Resource = &autoscalingv1.ResourceMetricSource{
			Name: s.Name, TargetAverageUtilization: copyPtr(s.Target.AverageUtilization), TargetAverageValue: copyQuantity(s.Target.AverageValue),
		}
	}
	if s := m.ContainerResource; s != nil {
		out.ContainerResource = &autoscalingv1.ContainerResourceMetricSource{
			Name: s.Name, Container: s.Container,
			TargetAverageUtilization: copyPtr(s.Target.AverageUtilization), TargetAverageValue: copyQuantity(s.Target.AverageValue),
		}
	}
	if s := m.External; s != nil {
		out.External = &autoscalingv1.ExternalMetricSource{
			MetricName: s.Metric.Name, MetricSelector: s.Metric.Selector.DeepCopy(),
			TargetValue: copyQuantity(s.Target.Value), TargetAverageValue: copyQuantity(s.Target.AverageValue),
		}
	}
	return out
}

func metricSpecToV2(m *autoscalingv1.MetricSpec) autoscalingv2.MetricSpec {
	out := autoscalingv2.MetricSpec{Type: autoscalingv2.MetricSourceType(m.Type)}
	if s := m.Object; s != nil {
		t := autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: copyQuantity(&s.TargetValue)}
		if s.AverageValue != nil {
			// v1 cannot omit targetValue; a zero one beside an average is no value.
			t = autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: copyQuantity(s.AverageValue)}
			if !s.TargetValue.IsZero() {
				t.Value = copyQuantity(&s.TargetValue)
			}
		}
		out.Object = &autoscalingv2.ObjectMetricSource{
			DescribedObject: autoscalingv2.CrossVersionObjectReference(s.Target),
			Target:          t,
			Metric:          autoscalingv2.MetricIdentifier{Name: s.MetricName, Selector: s.Selector.DeepCopy()},
		}
	}
	if s := m.Pods; s != nil {
		out.Pods = &autoscalingv2.PodsMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: s.MetricName, Selector: s.Selector.DeepCopy()},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: copyQuantity(&s.TargetAverageValue)},
		}
	}
	if s := m.Resource; s != nil {
		out.Resource = &autoscalingv2.ResourceMetricSource{Name: s.Name, Target: resourceTarget(s.TargetAverageUtilization, s.TargetAverageValue)}
	}
	if s := m.ContainerResource; s != nil {
		out.ContainerResource = &autoscalingv2.ContainerResourceMetricSource{
			Name: s.Name, Container: s.Container, Target: resourceTarget(s.TargetAverageUtilization, s.TargetAverageValue),
		}
	}
	if s := m.External; s != nil {
		t := autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, Value: copyQuantity(s.TargetValue), AverageValue: copyQuantity(s.TargetAverageValue)}
		if s.TargetValue != nil {
			t.Type = autoscalingv2.ValueMetricType
		}
		out.External = &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: s.MetricName, Selector: s.MetricSelector.DeepCopy()},
			Target: t,
		}
	}
	return out
}

func resourceTarget(utilization *int32, average *resource.Quantity) autoscalingv2.MetricTarget {
	t := autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageUtilization: copyPtr(utilization), AverageValue: copyQuantity(average)}
	if utilization != nil {
		t.Type = autoscalingv2.UtilizationMetricType
	}
	return t
}

func metricStatusToV1(m *autoscalingv2.MetricStatus) autoscalingv1.MetricStatus {
	out := autoscalingv1.MetricStatus{Type: autoscalingv1.MetricSourceType(m.Type)}
	if s := m.Object; s != nil {
		out.Object = &autoscalingv1.ObjectMetricStatus{
			Target:       autoscalingv1.CrossVersionObjectReference(s.DescribedObject),
			MetricName:   s.Metric.Name,
			CurrentValue: quantityOrZero(s.Current.Value),
			Selector:     s.Metric.Selector.DeepCopy(),
			AverageValue: copyQuantity(s.Current.AverageValue),
		}
	}
	if s := m.Pods; s != nil {
		out.Pods = &autoscalingv1.PodsMetricStatus{
			MetricName: s.Metric.Name, CurrentAverageValue: quantityOrZero(s.Current.AverageValue), Selector: s.Metric.Selector.DeepCopy(),
		}
	}
	if s := m.Resource; s != nil {
		out.Resource = &autoscalingv1.ResourceMetricStatus{
			Name: s.Name, CurrentAverageUtilization: copyPtr(s.Current.AverageUtilization), CurrentAverageValue: quantityOrZero(s.Current.AverageValue),
		}
	}
	if s := m.ContainerResource; s != nil {
		out.ContainerResource = &autoscalingv1.ContainerResourceMetricStatus{
			Name: s.Name, Container: s.Container,
			CurrentAverageUtilization: copyPtr(s.Current.AverageUtilization), CurrentAverageValue: quantityOrZero(s.Current.AverageValue),
		}
	}
	if s := m.External; s != nil {
		out.External = &autoscalingv1.ExternalMetricStatus{
			MetricName: s.Metric.Name, MetricSelector: s.Metric.Selector.DeepCopy(),
			CurrentValue: quantityOrZero(s.Current.Value), CurrentAverageValue: copyQuantity(s.Current.AverageValue),
		}
	}
	return out
}

func metricStatusToV2(m *autoscalingv1.MetricStatus) autoscalingv2.MetricStatus {
	out := autoscalingv2.MetricStatus{Type: autoscalingv2.MetricSourceType(m.Type)}
	if s := m.Object; s != nil {
		out.Object = &autoscalingv2.ObjectMetricStatus{
			DescribedObject: autoscalingv2.CrossVersionObjectReference(s.Target),
			Metric:          autoscalingv2.MetricIdentifier{Name: s.MetricName, Selector: s.Selector.DeepCopy()},
			Current:         autoscalingv2.MetricValueStatus{Value: copyQuantity(&s.CurrentValue), AverageValue: copyQuantity(s.AverageValue)},
		}
	}
	if s := m.Pods; s != nil {
		out.Pods = &autoscalingv2.PodsMetricStatus{
			Metric:  autoscalingv2.MetricIdentifier{Name: s.MetricName, Selector: s.Selector.DeepCopy()},
			Current: autoscalingv2.MetricValueStatus{AverageValue: copyQuantity(&s.CurrentAverageValue)},
		}
	}
	if s := m.Resource; s != nil {
		out.Resource = &autoscalingv2.ResourceMetricStatus{
			Name:    s.Name,
			Current: autoscalingv2.MetricValueStatus{AverageValue: copyQuantity(&s.CurrentAverageValue), AverageUtilization: copyPtr(s.CurrentAverageUtilization)},
		}
	}
	if s := m.ContainerResource; s != nil {
		out.ContainerResource = &autoscalingv2.ContainerResourceMetricStatus{
			Name: s.Name, Container: s.Container,
			Current: autoscalingv2.MetricValueStatus{AverageValue: copyQuantity(&s.CurrentAverageValue), AverageUtilization: copyPtr(s.CurrentAverageUtilization)},
		}
	}
	if s := m.External; s != nil {
		out.External = &autoscalingv2.ExternalMetricStatus{
			Metric:  autoscalingv2.MetricIdentifier{Name: s.MetricName, Selector: s.MetricSelector.DeepCopy()},
			Current: autoscalingv2.MetricValueStatus{Value: copyQuantity(&s.CurrentValue), AverageValue: copyQuantity(s.CurrentAverageValue)},
		}
	}
	return out
}

// behaviorAnnotation is the JSON shape of the behavior annotation. Upstream
// encodes its internal type, which has no JSON tags, so the keys are the Go
// field names; these structs reproduce that shape (untagged on purpose).
type behaviorAnnotation struct {
	ScaleUp   *scalingRulesAnnotation
	ScaleDown *scalingRulesAnnotation
}

type scalingRulesAnnotation struct {
	StabilizationWindowSeconds *int32
	SelectPolicy               *autoscalingv2.ScalingPolicySelect
	Policies                   []scalingPolicyAnnotation
	Tolerance                  *resource.Quantity
}

type scalingPolicyAnnotation struct {
	Type          autoscalingv2.HPAScalingPolicyType
	Value         int32
	PeriodSeconds int32
}

func behaviorToAnnotation(b *autoscalingv2.HorizontalPodAutoscalerBehavior) behaviorAnnotation {
	rules := func(r *autoscalingv2.HPAScalingRules) *scalingRulesAnnotation {
		if r == nil {
			return nil
		}
		out := &scalingRulesAnnotation{
			StabilizationWindowSeconds: copyPtr(r.StabilizationWindowSeconds),
			SelectPolicy:               copyPtr(r.SelectPolicy),
			Tolerance:                  copyQuantity(r.Tolerance),
		}
		if r.Policies != nil {
			out.Policies = make([]scalingPolicyAnnotation, len(r.Policies))
			for i, p := range r.Policies {
				out.Policies[i] = scalingPolicyAnnotation(p)
			}
		}
		return out
	}
	return behaviorAnnotation{ScaleUp: rules(b.ScaleUp), ScaleDown: rules(b.ScaleDown)}
}

func (b *behaviorAnnotation) toV2() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	rules := func(r *scalingRulesAnnotation) *autoscalingv2.HPAScalingRules {
		if r == nil {
			return nil
		}
		out := &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: r.StabilizationWindowSeconds,
			SelectPolicy:               r.SelectPolicy,
			Tolerance:                  r.Tolerance,
		}
		if r.Policies != nil {
			out.Policies = make([]autoscalingv2.HPAScalingPolicy, len(r.Policies))
			for i, p := range r.Policies {
				out.Policies[i] = autoscalingv2.HPAScalingPolicy(p)
			}
		}
		return out
	}
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(b.ScaleUp), ScaleDown: rules(b.ScaleDown)}
}

// copyPtr returns a pointer to a copy of *p, or nil.
func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
