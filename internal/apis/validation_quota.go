package apis

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	quotaScopes = []corev1.ResourceQuotaScope{
		corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating,
		corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort,
		corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeVolumeAttributesClass,
		corev1.ResourceQuotaScopeCrossNamespacePodAffinity,
	}
	// standardQuotaResources are the resources upstream knows how to
	// count, which a scope must then apply to.
	standardQuotaResources = []corev1.ResourceName{
		corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
		corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsStorage, corev1.ResourceRequestsEphemeralStorage,
		corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
		corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
		corev1.ResourceSecrets, corev1.ResourcePersistentVolumeClaims, corev1.ResourceConfigMaps,
		corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers,
	}
	podComputeQuotaResources = []corev1.ResourceName{
		corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory,
		corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
	}
	// conflictingScopes are pairs no quota may hold together.
	conflictingScopes = [][2]corev1.ResourceQuotaScope{
		{corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort},
		{corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating},
	}
)

func validateResourceQuota(q *corev1.ResourceQuota) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	hp := sp.Child("hard")
	for k, v := range q.Spec.Hard {
		rp := hp.Key(string(k))
		errs = append(errs, validateResourceName(k, rp)...)
		errs = append(errs, validateQuantity(k, v, rp)...)
	}
	errs = append(errs, validateQuotaScopes(&q.Spec, sp.Child("scopes"))...)
	if q.Spec.ScopeSelector != nil {
		errs = append(errs, validateQuotaScopeSelector(&q.Spec, sp.Child("scopeSelector", "matchExpressions"))...)
	}
	return errs
}

func isStandardQuotaResource(n corev1.ResourceName) bool {
	return slices.Contains(standardQuotaResources, n) ||
		strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix) || strings.HasPrefix(string(n), corev1.ResourceRequestsHugePagesPrefix)
}

// scopeAppliesTo reports whether a quota scope can limit the resource.
func scopeAppliesTo(scope corev1.ResourceQuotaScope, n corev1.ResourceName) bool {
	switch scope {
	case corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeNotBestEffort,
		corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return n == corev1.ResourcePods || slices.Contains(podComputeQuotaResources, n)
	case corev1.ResourceQuotaScopeBestEffort:
		return n == corev1.ResourcePods
	case corev1.ResourceQuotaScopeVolumeAttributesClass:
		return n == corev1.ResourcePersistentVolumeClaims || n == corev1.ResourceRequestsStorage
	}
	return true
}

// scopeErrors checks one scope: known, and applicable to every standard
// resource of the quota (hard is sorted).
func scopeErrors(scope corev1.ResourceQuotaScope, hard []corev1.ResourceName, unknown, misapplied func()) {
	if !slices.Contains(quotaScopes, scope) {
		unknown()
	}
	for _, n := range hard {
		if isStandardQuotaResource(n) && !scopeAppliesTo(scope, n) {
			misapplied()
		}
	}
}

func hasConflictingScopes(scopes []corev1.ResourceQuotaScope) int {
	n := 0
	for _, pair := range conflictingScopes {
		if slices.Contains(scopes, pair[0]) && slices.Contains(scopes, pair[1]) {
			n++
		}
	}
	return n
}

func validateQuotaScopes(s *corev1.ResourceQuotaSpec, p *field.Path) field.ErrorList {
	if len(s.Scopes) == 0 {
		return nil
	}
	var errs field.ErrorList
	hard := slices.Sorted(maps.Keys(s.Hard))
	for _, scope := range s.Scopes {
		scopeErrors(scope, hard,
			func() { errs = append(errs, field.Invalid(p, s.Scopes, "unsupported scope")) },
			func() { errs = append(errs, field.Invalid(p, s.Scopes, "unsupported scope applied to resource")) })
	}
	for range hasConflictingScopes(s.Scopes) {
		errs = append(errs, field.Invalid(p, s.Scopes, "conflicting scopes"))
	}
	return errs
}

func validateQuotaScopeSelector(s *corev1.ResourceQuotaSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	hard := slices.Sorted(maps.Keys(s.Hard))
	var names []corev1.ResourceQuotaScope
	for _, req := range s.ScopeSelector.MatchExpressions {
		scopeErrors(req.ScopeName, hard,
			func() { errs = append(errs, field.Invalid(p.Child("scopeName"), req.ScopeName, "unsupported scope")) },
			func() {
				errs = append(errs, field.Invalid(p, s.ScopeSelector, "unsupported scope applied to resource"))
			})
		switch req.ScopeName {
		case corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopeTerminating,
			corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
			if req.Operator != corev1.ScopeSelectorOpExists {
				errs = append(errs, field.Invalid(p.Child("operator"), req.Operator,
					"must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"))
			}
		}
		switch req.Operator {
		case corev1.ScopeSelectorOpIn, corev1.ScopeSelectorOpNotIn:
			if len(req.Values) == 0 {
				errs = append(errs, field.Required(p.Child("values"), "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector"))
			}
		case corev1.ScopeSelectorOpExists, corev1.ScopeSelectorOpDoesNotExist:
			if len(req.Values) != 0 {
				errs = append(errs, field.Invalid(p.Child("values"), req.Values, "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector"))
			}
		default:
			errs = append(errs, field.Invalid(p.Child("operator"), req.Operator, "not a valid selector operator"))
		}
		names = append(names, req.ScopeName)
	}
	for range hasConflictingScopes(names) {
		errs = append(errs, field.Invalid(p, s.Scopes, "conflicting scopes"))
	}
	return errs
}
