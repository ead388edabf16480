package dynamicadmission

import (
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

// RuleMatches reports whether r selects write a by scope, operation, group,
// version and resource. Only the requested resource is compared: Skiff
// serves each resource in one version, so matchPolicy Equivalent finds no
// other form of it.
func RuleMatches(r admissionregistrationv1.RuleWithOperations, a *admission.Attributes) bool {
	return scopeMatches(r.Scope, a) &&
		operationMatches(r.Operations, a.Operation) &&
		exactOrWildcard(r.APIGroups, a.Resource.Group) &&
		exactOrWildcard(r.APIVersions, a.Resource.Version) &&
		resourceMatches(r.Resources, a.Resource.Resource, a.Subresource)
}

// scopeMatches counts the Namespace object as cluster-scoped, whatever
// namespace the request reports for it.
func scopeMatches(scope *admissionregistrationv1.ScopeType, a *admission.Attributes) bool {
	if scope == nil || *scope == admissionregistrationv1.AllScopes {
		return true
	}
	isNamespace := a.Resource == NamespacesResource
	switch *scope {
	case admissionregistrationv1.NamespacedScope:
		return !isNamespace && a.Namespace != ""
	case admissionregistrationv1.ClusterScope:
		return isNamespace || a.Namespace == ""
	}
	return false
}

func operationMatches(ops []admissionregistrationv1.OperationType, op admission.Operation) bool {
	for _, o := range ops {
		if o == admissionregistrationv1.OperationAll || string(o) == string(op) {
			return true
		}
	}
	return false
}

func exactOrWildcard(items []string, requested string) bool {
	for _, item := range items {
		if item == "*" || item == requested {
			return true
		}
	}
	return false
}

// resourceMatches understands "pods", "pods/status", "*", "*/status",
// "pods/*" and "*/*"; a plain "pods" does not match its subresources.
func resourceMatches(resources []string, resource, subresource string) bool {
	for _, r := range resources {
		res, sub, _ := strings.Cut(r, "/")
		if (res == "*" || res == resource) && (sub == "*" || sub == subresource) {
			return true
		}
	}
	return false
}

// ObjectSelectorMatches applies an objectSelector to the new or the old
// object of write a; an empty selector selects every write.
func ObjectSelectorMatches(sel labels.Selector, a *admission.Attributes) bool {
	if sel.Empty() {
		return true
	}
	return labelsMatch(sel, a.Object) || labelsMatch(sel, a.OldObject)
}

func labelsMatch(sel labels.Selector, obj runtime.Object) bool {
	if obj == nil {
		return false
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(acc.GetLabels()))
}
