package apis

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateRuntimeClass checks a RuntimeClass as upstream does: the handler
// is a DNS label (it becomes a CRI runtime handler name), the overhead is
// a valid set of container resources, and the scheduling constraints are
// valid labels and unique tolerations.
func validateRuntimeClass(rc *nodev1.RuntimeClass) field.ErrorList {
	var errs field.ErrorList
	hp := field.NewPath("handler")
	if rc.Handler == "" {
		errs = append(errs, field.Required(hp, ""))
	} else {
		for _, msg := range validation.IsDNS1123Label(rc.Handler) {
			errs = append(errs, field.Invalid(hp, rc.Handler, msg))
		}
	}
	if rc.Overhead != nil {
		// Upstream validates the overhead as a container's limits, hence
		// the "overhead.limits[...]" paths.
		errs = append(errs, validateOverheadList(rc.Overhead.PodFixed, field.NewPath("overhead", "limits"))...)
	}
	if s := rc.Scheduling; s != nil {
		sp := field.NewPath("scheduling")
		if s.NodeSelector != nil {
			errs = append(errs, metav1validation.ValidateLabels(s.NodeSelector, sp.Child("nodeSelector"))...)
		}
		errs = append(errs, validateRuntimeClassTolerations(s.Tolerations, sp.Child("tolerations"))...)
	}
	return errs
}

// validateRuntimeClassUpdate adds the update rules: the handler is immutable.
func validateRuntimeClassUpdate(rc, old *nodev1.RuntimeClass) field.ErrorList {
	errs := validateRuntimeClass(rc)
	if rc.Handler != old.Handler {
		errs = append(errs, field.Invalid(field.NewPath("handler"), rc.Handler, "field is immutable"))
	}
	return errs
}

var overheadResourceNames = map[corev1.ResourceName]bool{
	corev1.ResourceCPU: true, corev1.ResourceMemory: true, corev1.ResourceEphemeralStorage: true,
}

// validateOverheadList checks resource names and quantities as upstream's
// container resource validation does.
func validateOverheadList(rl corev1.ResourceList, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, q := range rl {
		kp := p.Key(string(name))
		for _, msg := range validation.IsQualifiedName(string(name)) {
			errs = append(errs, field.Invalid(kp, name, msg))
		}
		if !strings.Contains(string(name), "/") && !overheadResourceNames[name] &&
			!strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
			errs = append(errs, field.Invalid(kp, name, "must be a standard resource for containers"))
		}
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(kp, q.String(), "must be greater than or equal to 0"))
		}
	}
	return errs
}

var runtimeClassTaintEffects = []string{string(corev1.TaintEffectNoSchedule), string(corev1.TaintEffectPreferNoSchedule), string(corev1.TaintEffectNoExecute)}

// validateRuntimeClassTolerations checks tolerations as upstream's RuntimeClass
// validation does, including that no two are the same.
func validateRuntimeClassTolerations(ts []corev1.Toleration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[corev1.Toleration]bool{}
	for i, t := range ts {
		ip := p.Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, ip.Child("key"))...)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(ip.Child("operator"), t.Operator,
				"operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(ip.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			if msgs := validation.IsValidLabelValue(t.Value); len(msgs) > 0 {
				errs = append(errs, field.Invalid(ip.Child("operator"), t.Value, strings.Join(msgs, ";")))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(ip.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(ip.Child("operator"), t.Operator,
				[]string{string(corev1.TolerationOpEqual), string(corev1.TolerationOpExists)}))
		}
		if t.Effect != "" && !slices.Contains(runtimeClassTaintEffects, string(t.Effect)) {
			errs = append(errs, field.NotSupported(ip.Child("effect"), t.Effect, runtimeClassTaintEffects))
		}
		key := corev1.Toleration{Key: t.Key, Operator: t.Operator, Value: t.Value, Effect: t.Effect}
		if seen[key] {
			errs = append(errs, field.Duplicate(ip, t))
		}
		seen[key] = true
	}
	return errs
}
