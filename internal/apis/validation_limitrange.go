package apis

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func validateLimitRange(lr *corev1.LimitRange) field.ErrorList {
	var errs field.ErrorList
	seen := map[corev1.LimitType]bool{}
	for i := range lr.Spec.Limits {
		l := &lr.Spec.Limits[i]
		ip := field.NewPath("spec", "limits").Index(i)
		errs = append(errs, validateLimitType(l.Type, ip.Child("type"))...)
		if seen[l.Type] {
			errs = append(errs, field.Duplicate(ip.Child("type"), l.Type))
		}
		seen[l.Type] = true
		errs = append(errs, validateLimitRangeItem(l, ip)...)
	}
	return errs
}

// validateLimitType: a qualified name, one of the standard types unless
// it has a domain.
func validateLimitType(t corev1.LimitType, p *field.Path) field.ErrorList {
	if msgs := validation.IsQualifiedName(string(t)); len(msgs) > 0 {
		errs := make(field.ErrorList, 0, len(msgs))
		for _, m := range msgs {
			errs = append(errs, field.Invalid(p, t, m))
		}
		return errs
	}
	switch t {
	case corev1.LimitTypePod, corev1.LimitTypeContainer, corev1.LimitTypePersistentVolumeClaim:
		return nil
	}
	if !strings.Contains(string(t), "/") {
		return field.ErrorList{field.Invalid(p, t, "must be a standard limit type or fully qualified")}
	}
	return nil
}

// validateLimitRangeItem checks the resource names of one limit and that
// its bounds, defaults and ratio are consistent (not their signs: upstream
// accepts negative quantities here).
func validateLimitRangeItem(l *corev1.LimitRangeItem, ip *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := func(list corev1.ResourceList, child string) {
		for _, k := range slices.Sorted(maps.Keys(list)) {
			kp := ip.Child(child).Key(string(k))
			if l.Type == corev1.LimitTypePod || l.Type == corev1.LimitTypeContainer {
				errs = append(errs, validateContainerResourceName(k, kp)...)
			} else {
				errs = append(errs, validateResourceName(k, kp)...)
			}
		}
	}
	names(l.Max, "max")
	names(l.Min, "min")
	if l.Type == corev1.LimitTypePod {
		if len(l.Default) > 0 {
			errs = append(errs, field.Forbidden(ip.Child("default"), "may not be specified when `type` is 'Pod'"))
		}
		if len(l.DefaultRequest) > 0 {
			errs = append(errs, field.Forbidden(ip.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
		}
	} else {
		names(l.Default, "default")
		names(l.DefaultRequest, "defaultRequest")
	}
	if l.Type == corev1.LimitTypePersistentVolumeClaim {
		_, hasMin := l.Min[corev1.ResourceStorage]
		_, hasMax := l.Max[corev1.ResourceStorage]
		if !hasMin && !hasMax {
			errs = append(errs, field.Required(ip.Child("limits"), "either minimum or maximum storage value is required, but neither was provided"))
		}
	}
	names(l.MaxLimitRequestRatio, "maxLimitRequestRatio")
	defaults, defaultRequests := l.Default, l.DefaultRequest
	if l.Type == corev1.LimitTypePod {
		defaults, defaultRequests = nil, nil
	}
	keys := map[corev1.ResourceName]bool{}
	for _, list := range []corev1.ResourceList{l.Max, l.Min, defaults, defaultRequests, l.MaxLimitRequestRatio} {
		for k := range list {
			keys[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		mn, hasMin := l.Min[k]
		mx, hasMax := l.Max[k]
		def, hasDef := defaults[k]
		req, hasReq := defaultRequests[k]
		ratio, hasRatio := l.MaxLimitRequestRatio[k]
		key := string(k)
		if hasMin && hasMax && mn.Cmp(mx) > 0 {
			errs = append(errs, field.Invalid(ip.Child("min").Key(key), mn, fmt.Sprintf("min value %s is greater than max value %s", mn.String(), mx.String())))
		}
		if hasReq && hasMin && mn.Cmp(req) > 0 {
			errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), req, fmt.Sprintf("min value %s is greater than default request value %s", mn.String(), req.String())))
		}
		if hasReq && hasMax && req.Cmp(mx) > 0 {
			errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), req, fmt.Sprintf("default request value %s is greater than max value %s", req.String(), mx.String())))
		}
		if hasReq && hasDef && req.Cmp(def) > 0 {
			errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), req, fmt.Sprintf("default request value %s is greater than default limit value %s", req.String(), def.String())))
		}
		if hasDef && hasMin && mn.Cmp(def) > 0 {
			errs = append(errs, field.Invalid(ip.Child("default").Key(key), mn, fmt.Sprintf("min value %s is greater than default value %s", mn.String(), def.String())))
		}
		if hasDef && hasMax && def.Cmp(mx) > 0 {
			errs = append(errs, field.Invalid(ip.Child("default").Key(key), mx, fmt.Sprintf("default value %s is greater than max value %s", def.String(), mx.String())))
		}
		if hasRatio && ratio.Cmp(*resource.NewQuantity(1, resource.DecimalSI)) < 0 {
			errs = append(errs, field.Invalid(ip.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is less than 1", ratio.String())))
		}
		if hasRatio && hasMin && hasMax {
			if limit := maxRatioLimit(mn, mx); ratioValue(ratio, mn, mx) > limit {
				errs = append(errs, field.Invalid(ip.Child("maxLimitRequestRatio").Key(key), ratio, fmt.Sprintf("ratio %s is greater than max/min = %f", ratio.String(), limit)))
			}
		}
		if !isOvercommitAllowed(k) && hasDef && hasReq && def.Cmp(req) != 0 {
			errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(key), req, fmt.Sprintf("default value %s must equal to defaultRequest value %s in %s", def.String(), req.String(), key)))
		}
	}
	return errs
}

// fitsMilli reports whether the quantities can be compared in milli-units.
func fitsMilli(qs ...resource.Quantity) bool {
	for _, q := range qs {
		if q.Value() >= resource.MaxMilliValue {
			return false
		}
	}
	return true
}

func ratioValue(ratio, mn, mx resource.Quantity) float64 {
	if fitsMilli(ratio, mn, mx) {
		return float64(ratio.MilliValue()) / 1000
	}
	return float64(ratio.Value())
}

func maxRatioLimit(mn, mx resource.Quantity) float64 {
	if fitsMilli(mn, mx) {
		return float64(mx.MilliValue()) / float64(mn.MilliValue())
	}
	return float64(mx.Value()) / float64(mn.Value())
}
