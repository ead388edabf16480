package dynamicadmission

import (
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

// RuleMatches reports whether r selects write a by scope, operation, group,
// version and resource, as requested (matchPolicy Exact).
func RuleMatches(r admissionregistrationv1.RuleWithOperations, a *admission.Attributes) bool {
	return RuleMatchesResource(r, a, a.Resource)
}

// RuleMatchesResource is RuleMatches for write a made through gvr, an
// equivalent of the requested resource (matchPolicy Equivalent).
func RuleMatchesResource(r admissionregistrationv1.RuleWithOperations, a *admission.Attributes, gvr schema.GroupVersionResource) bool {
	return scopeMatches(r.Scope, a) &&
		operationMatches(r.Operations, a.Operation) &&
		exactOrWildcard(r.APIGroups, gvr.Group) &&
		exactOrWildcard(r.APIVersions, gvr.Version) &&
		resourceMatches(r.Resources, gvr.Resource, a.Subresource)
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
