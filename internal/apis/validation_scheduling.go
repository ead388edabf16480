package apis

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateScheduling checks the scheduling constraints of a pod spec, so
// that malformed terms are refused at the API instead of confusing the
// scheduler.
func validateScheduling(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if a := s.Affinity; a != nil {
		ap := p.Child("affinity")
		if na := a.NodeAffinity; na != nil {
			np := ap.Child("nodeAffinity")
			if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
				rp := np.Child("requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
				if len(r.NodeSelectorTerms) == 0 {
					errs = append(errs, field.Required(rp, "must have at least one node selector term"))
				}
				for i, t := range r.NodeSelectorTerms {
					errs = append(errs, validateNodeSelectorTerm(t, rp.Index(i))...)
				}
			}
			for i, w := range na.PreferredDuringSchedulingIgnoredDuringExecution {
				wp := np.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
				if w.Weight < 1 || w.Weight > 100 {
					errs = append(errs, field.Invalid(wp.Child("weight"), w.Weight, "must be in the range 1-100"))
				}
				errs = append(errs, validateNodeSelectorTerm(w.Preference, wp.Child("preference"))...)
			}
		}
		if pa := a.PodAffinity; pa != nil {
			pp := ap.Child("podAffinity")
			for i, t := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				errs = append(errs, validatePodAffinityTerm(t, pp.Child("requiredDuringSchedulingIgnoredDuringExecution").Index(i))...)
			}
			for i, w := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				errs = append(errs, validateWeightedPodAffinityTerm(w, pp.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i))...)
			}
		}
		if pa := a.PodAntiAffinity; pa != nil {
			pp := ap.Child("podAntiAffinity")
			for i, t := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				errs = append(errs, validatePodAffinityTerm(t, pp.Child("requiredDuringSchedulingIgnoredDuringExecution").Index(i))...)
			}
			for i, w := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				errs = append(errs, validateWeightedPodAffinityTerm(w, pp.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i))...)
			}
		}
	}
	for i, c := range s.TopologySpreadConstraints {
		cp := p.Child("topologySpreadConstraints").Index(i)
		if c.MaxSkew <= 0 {
			errs = append(errs, field.Invalid(cp.Child("maxSkew"), c.MaxSkew, "must be greater than zero"))
		}
		if c.TopologyKey == "" {
			errs = append(errs, field.Required(cp.Child("topologyKey"), "can not be empty"))
		}
		if c.WhenUnsatisfiable != corev1.DoNotSchedule && c.WhenUnsatisfiable != corev1.ScheduleAnyway {
			errs = append(errs, field.NotSupported(cp.Child("whenUnsatisfiable"), c.WhenUnsatisfiable,
				[]string{string(corev1.DoNotSchedule), string(corev1.ScheduleAnyway)}))
		}
		if c.LabelSelector != nil {
			errs = append(errs, metav1validation.ValidateLabelSelector(c.LabelSelector, metav1validation.LabelSelectorValidationOptions{}, cp.Child("labelSelector"))...)
		}
	}
	return append(errs, validateTolerations(s.Tolerations, p.Child("tolerations"))...)
}

// validateTolerations checks tolerations in upstream's order: key,
// operator against key, effect against seconds, value against operator,
// then the effect itself.
func validateTolerations(ts []corev1.Toleration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range ts {
		tp := p.Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, tp.Child("key"))...)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(tp.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(tp.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case "", corev1.TolerationOpEqual:
			if msgs := validation.IsValidLabelValue(t.Value); len(msgs) > 0 {
				errs = append(errs, field.Invalid(tp.Child("operator"), t.Value, strings.Join(msgs, ";")))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(tp.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(tp.Child("operator"), t.Operator, []string{string(corev1.TolerationOpEqual), string(corev1.TolerationOpExists)}))
		}
		if t.Effect != "" && !oneOf(string(t.Effect), taintEffects) {
			errs = append(errs, field.NotSupported(tp.Child("effect"), t.Effect, taintEffects))
		}
	}
	return errs
}

func validateNodeSelectorTerm(t corev1.NodeSelectorTerm, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, r := range t.MatchExpressions {
		rp := p.Child("matchExpressions").Index(i)
		for _, msg := range validation.IsQualifiedName(r.Key) {
			errs = append(errs, field.Invalid(rp.Child("key"), r.Key, msg))
		}
		switch r.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
			if len(r.Values) == 0 {
				errs = append(errs, field.Required(rp.Child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
			}
		case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
			if len(r.Values) > 0 {
				errs = append(errs, field.Forbidden(rp.Child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			if len(r.Values) != 1 {
				errs = append(errs, field.Required(rp.Child("values"), "must be specified single value when `operator` is 'Lt' or 'Gt'"))
			} else if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
				errs = append(errs, field.Invalid(rp.Child("values").Index(0), r.Values[0], "must be an integer"))
			}
		default:
			errs = append(errs, field.NotSupported(rp.Child("operator"), r.Operator,
				[]string{"DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"}))
		}
	}
	for i, r := range t.MatchFields {
		rp := p.Child("matchFields").Index(i)
		if r.Key != "metadata.name" {
			errs = append(errs, field.NotSupported(rp.Child("key"), r.Key, []string{"metadata.name"}))
		}
		if r.Operator != corev1.NodeSelectorOpIn && r.Operator != corev1.NodeSelectorOpNotIn {
			errs = append(errs, field.NotSupported(rp.Child("operator"), r.Operator, []string{"In", "NotIn"}))
		}
		if len(r.Values) != 1 {
			errs = append(errs, field.Required(rp.Child("values"), "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"))
		}
	}
	return errs
}

func validatePodAffinityTerm(t corev1.PodAffinityTerm, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.TopologyKey == "" {
		errs = append(errs, field.Required(p.Child("topologyKey"), "can not be empty"))
	} else {
		for _, msg := range validation.IsQualifiedName(t.TopologyKey) {
			errs = append(errs, field.Invalid(p.Child("topologyKey"), t.TopologyKey, msg))
		}
	}
	opts := metav1validation.LabelSelectorValidationOptions{}
	if t.LabelSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(t.LabelSelector, opts, p.Child("labelSelector"))...)
	}
	if t.NamespaceSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(t.NamespaceSelector, opts, p.Child("namespaceSelector"))...)
	}
	return errs
}

func validateWeightedPodAffinityTerm(w corev1.WeightedPodAffinityTerm, p *field.Path) field.ErrorList {
	errs := validatePodAffinityTerm(w.PodAffinityTerm, p.Child("podAffinityTerm"))
	if w.Weight < 1 || w.Weight > 100 {
		errs = append(errs, field.Invalid(p.Child("weight"), w.Weight, "must be in the range 1-100"))
	}
	return errs
}
