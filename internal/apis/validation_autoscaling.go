package apis

import (
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds of an HPA's behavior, as upstream.
const (
	maxStabilizationWindowSeconds = 3600
	maxScalingPeriodSeconds       = 1800
)

var (
	hpaMetricSourceTypes  = []string{"ContainerResource", "External", "Object", "Pods", "Resource"}
	hpaSelectPolicies     = []string{"Disabled", "Max", "Min"}
	hpaScalingPolicyTypes = []string{"Percent", "Pods"}
)

// validateHPA checks an autoscaling/v2 HorizontalPodAutoscaler; v1 objects
// are converted to v2 first, so errors name the v2 fields, as upstream's
// (which validates its internal form, shaped as v2) do. old is the stored
// object on update.
func validateHPA(h, old *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	spec := field.NewPath("spec")
	s := &h.Spec
	var errs field.ErrorList
	if s.MinReplicas != nil && s.MaxReplicas < *s.MinReplicas {
		errs = append(errs, field.Invalid(spec.Child("maxReplicas"), s.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	ref := spec.Child("scaleTargetRef")
	if s.ScaleTargetRef.Kind == "" {
		errs = append(errs, field.Required(ref.Child("kind"), ""))
	} else {
		errs = append(errs, invalidMsgs(ref.Child("kind"), s.ScaleTargetRef.Kind, path.IsValidPathSegmentName(s.ScaleTargetRef.Kind))...)
	}
	if s.ScaleTargetRef.Name == "" {
		errs = append(errs, field.Required(ref.Child("name"), ""))
	} else {
		errs = append(errs, invalidMsgs(ref.Child("name"), s.ScaleTargetRef.Name, path.IsValidPathSegmentName(s.ScaleTargetRef.Name))...)
	}
	unchanged := old != nil && old.Spec.ScaleTargetRef.APIVersion == s.ScaleTargetRef.APIVersion && old.Spec.ScaleTargetRef.Kind == s.ScaleTargetRef.Kind
	if !unchanged {
		// Only ReplicationControllers, in the core group, may omit the group.
		errs = append(errs, validateScaleTargetAPIVersion(s.ScaleTargetRef.APIVersion, s.ScaleTargetRef.Kind == "ReplicationController", ref.Child("apiVersion"))...)
	}
	for i := range s.Metrics {
		errs = append(errs, validateHPAMetricSpec(&s.Metrics[i], spec.Child("metrics").Index(i))...)
	}
	if b := s.Behavior; b != nil {
		errs = append(errs, validateHPAScalingRules(b.ScaleUp, spec.Child("behavior", "scaleUp"))...)
		errs = append(errs, validateHPAScalingRules(b.ScaleDown, spec.Child("behavior", "scaleDown"))...)
	}
	// Upstream checks the replica bounds declaratively, after the rules
	// above; scale to zero (beta, on by default) allows minReplicas 0.
	if s.MinReplicas != nil && *s.MinReplicas < 0 {
		errs = append(errs, field.Invalid(spec.Child("minReplicas"), *s.MinReplicas, "must be greater than or equal to 0"))
	}
	switch {
	case s.MaxReplicas == 0:
		errs = append(errs, field.Required(spec.Child("maxReplicas"), ""))
	case s.MaxReplicas < 0:
		errs = append(errs, field.Invalid(spec.Child("maxReplicas"), s.MaxReplicas, "must be greater than or equal to 1"))
	}
	return errs
}

// validateScaleTargetAPIVersion requires a parsable group/version with a
// group, unless the core group is allowed.
func validateScaleTargetAPIVersion(v string, allowCore bool, p *field.Path) field.ErrorList {
	gv, err := schema.ParseGroupVersion(v)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(p, v, err.Error())}
	case gv.Group == "" && !allowCore:
		return field.ErrorList{field.Invalid(p, v, "apiVersion must specify API group")}
	}
	return nil
}

func validateHPAScalingRules(r *autoscalingv2.HPAScalingRules, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil {
		if *w < 0 {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, "must be greater than or equal to zero"))
		}
		if *w > maxStabilizationWindowSeconds {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, fmt.Sprintf("must be less than or equal to %d", maxStabilizationWindowSeconds)))
		}
	}
	if sp := r.SelectPolicy; sp != nil && !sets.New(hpaSelectPolicies...).Has(string(*sp)) {
		errs = append(errs, field.NotSupported(p.Child("selectPolicy"), *sp, hpaSelectPolicies))
	}
	if len(r.Policies) == 0 {
		errs = append(errs, field.Required(p.Child("policies"), "must specify at least one Policy"))
	}
	for i, pol := range r.Policies {
		pp := p.Child("policies").Index(i)
		if !sets.New(hpaScalingPolicyTypes...).Has(string(pol.Type)) {
			errs = append(errs, field.NotSupported(pp.Child("type"), pol.Type, hpaScalingPolicyTypes))
		}
		if pol.Value <= 0 {
			errs = append(errs, field.Invalid(pp.Child("value"), pol.Value, "must be greater than zero"))
		}
		if pol.PeriodSeconds <= 0 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, "must be greater than zero"))
		}
		if pol.PeriodSeconds > maxScalingPeriodSeconds {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, fmt.Sprintf("must be less than or equal to %d", maxScalingPeriodSeconds)))
		}
	}
	return errs
}

func validateHPAMetricSpec(m *autoscalingv2.MetricSpec, p *field.Path) field.ErrorList {
	if m.Type == "" {
		return field.ErrorList{field.Required(p.Child("type"), "must specify a metric source type"),
			field.NotSupported(p.Child("type"), m.Type, hpaMetricSourceTypes)}
	}
	sources := map[string]bool{
		"object": m.Object != nil, "pods": m.Pods != nil, "resource": m.Resource != nil,
		"external": m.External != nil, "containerResource": m.ContainerResource != nil,
	}
	want := map[autoscalingv2.MetricSourceType]string{
		autoscalingv2.ObjectMetricSourceType: "object", autoscalingv2.PodsMetricSourceType: "pods",
		autoscalingv2.ResourceMetricSourceType: "resource", autoscalingv2.ExternalMetricSourceType: "external",
		autoscalingv2.ContainerResourceMetricSourceType: "containerResource",
	}[m.Type]
	if want == "" {
		return field.ErrorList{field.NotSupported(p.Child("type"), m.Type, hpaMetricSourceTypes)}
	}
	var errs field.ErrorList
	if !sources[want] {
		errs = append(errs, field.Required(p.Child(want), "must populate information for the given metric source"))
	}
	for _, name := range []string{"object", "pods", "resource", "external", "containerResource"} {
		if name != want && sources[name] {
			errs = append(errs, field.Forbidden(p.Child(name), "must populate the given metric source only"))
		}
	}
	switch {
	case m.Resource != nil && want == "resource":
		rp := p.Child("resource")
		if m.Resource.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "must specify a resource name"))
		}
		errs = append(errs, validateHPAUtilizationTarget(&m.Resource.Target, rp)...)
	case m.ContainerResource != nil && want == "containerResource":
		cp := p.Child("containerResource")
		if m.ContainerResource.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), "must specify a resource name"))
		}
		if m.ContainerResource.Container == "" {
			errs = append(errs, field.Required(cp.Child("container"), "must specify a container"))
		}
		errs = append(errs, validateHPAUtilizationTarget(&m.ContainerResource.Target, cp)...)
	case m.Pods != nil && want == "pods":
		pp := p.Child("pods")
		errs = append(errs, validateHPAMetricName(m.Pods.Metric.Name, pp.Child("metric"))...)
		errs = append(errs, validateHPAMetricTarget(&m.Pods.Target, pp.Child("target"))...)
		if m.Pods.Target.AverageValue == nil {
			errs = append(errs, field.Required(pp.Child("target", "averageValue"), "must specify a positive target averageValue"))
		}
	case m.Object != nil && want == "object":
		op := p.Child("object")
		errs = append(errs, validateHPAMetricName(m.Object.Metric.Name, op.Child("metric"))...)
		errs = append(errs, validateHPAMetricTarget(&m.Object.Target, op.Child("target"))...)
		if m.Object.Target.Value == nil && m.Object.Target.AverageValue == nil {
			errs = append(errs, field.Required(op.Child("target", "averageValue"), "must set either a target value or averageValue"))
		}
	case m.External != nil && want == "external":
		ep := p.Child("external")
		errs = append(errs, validateHPAMetricName(m.External.Metric.Name, ep.Child("metric"))...)
		errs = append(errs, validateHPAMetricTarget(&m.External.Target, ep.Child("target"))...)
		t := &m.External.Target
		if t.Value == nil && t.AverageValue == nil {
			errs = append(errs, field.Required(ep.Child("target", "averageValue"), "must set either a target value for metric or a per-pod target"))
		}
		if t.Value != nil && t.AverageValue != nil {
			errs = append(errs, field.Forbidden(ep.Child("target", "value"), "may not set both a target value for metric and a per-pod target"))
		}
	}
	return errs
}

func validateHPAUtilizationTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	errs := validateHPAMetricTarget(t, p.Child("target"))
	if t.AverageUtilization == nil && t.AverageValue == nil {
		errs = append(errs, field.Required(p.Child("target", "averageUtilization"), "must set either a target raw value or a target utilization"))
	}
	if t.AverageUtilization != nil && t.AverageValue != nil {
		errs = append(errs, field.Forbidden(p.Child("target", "averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return errs
}

func validateHPAMetricTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Type == "" {
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric target type"))
	}
	switch t.Type {
	case autoscalingv2.UtilizationMetricType, autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType:
	default:
		errs = append(errs, field.Invalid(p.Child("type"), t.Type, "must be either Utilization, Value, or AverageValue"))
	}
	if t.Value != nil && t.Value.Sign() != 1 {
		errs = append(errs, field.Invalid(p.Child("value"), t.Value.String(), "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() != 1 {
		errs = append(errs, field.Invalid(p.Child("averageValue"), t.AverageValue.String(), "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(p.Child("averageUtilization"), *t.AverageUtilization, "must be greater than 0"))
	}
	return errs
}

func validateHPAMetricName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p.Child("name"), "must specify a metric name")}
	}
	return invalidMsgs(p.Child("name"), name, path.IsValidPathSegmentName(name))
}
