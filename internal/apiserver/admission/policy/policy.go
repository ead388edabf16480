// Package policy evaluates ValidatingAdmissionPolicies and
// MutatingAdmissionPolicies (admissionregistration.k8s.io/v1) as admission
// plugins: bindings select policies, match resources and match conditions
// select requests, params come from any kind, and CEL expressions decide or
// mutate, with upstream's cost limits, messages and status codes.
package policy

import (
	"context"
	"sort"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// PolicyLister returns the current policies and bindings, typically from
// watch caches. The objects are shared and must not be modified.
type PolicyLister interface {
	ValidatingAdmissionPolicies() []*admissionregistrationv1.ValidatingAdmissionPolicy
	ValidatingAdmissionPolicyBindings() []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	MutatingAdmissionPolicies() []*admissionregistrationv1.MutatingAdmissionPolicy
	MutatingAdmissionPolicyBindings() []*admissionregistrationv1.MutatingAdmissionPolicyBinding
}

// ParamGetter reads the params of a policy: objects of its paramKind.
type ParamGetter interface {
	// Scope reports whether kind is namespaced; known is false when the
	// server does not serve kind.
	Scope(kind schema.GroupVersionKind) (namespaced, known bool)
	// GetParam returns one object (namespace is empty for cluster-scoped
	// kinds), or a NotFound API error.
	GetParam(ctx context.Context, kind schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error)
	// ListParams returns the objects in namespace (all of a cluster-scoped
	// kind) whose labels match selector.
	ListParams(ctx context.Context, kind schema.GroupVersionKind, namespace string, selector labels.Selector) ([]*unstructured.Unstructured, error)
}

// NamespaceGetter reads a Namespace, or returns a NotFound API error.
type NamespaceGetter interface {
	GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

// Deps are what the policy plugins read.
type Deps struct {
	Policies   PolicyLister
	Params     ParamGetter
	Namespaces NamespaceGetter
	// Authorizer backs the CEL `authorizer` variable; when nil, expressions
	// that use it fail at evaluation.
	Authorizer authz.Authorizer
	// TypeConverter gives the schema ApplyConfiguration mutations merge
	// with; when nil, or nil for a kind, mergeMaps's schemaless rules apply.
	TypeConverter TypeConverterFor
}

// bindingsByPolicy groups bindings by the policy they name, each group
// sorted by binding name so evaluation order does not depend on the cache.
func bindingsByPolicy[B any](bindings []B, policyName func(B) string, name func(B) string) map[string][]B {
	out := map[string][]B{}
	for _, b := range bindings {
		out[policyName(b)] = append(out[policyName(b)], b)
	}
	for _, group := range out {
		sort.Slice(group, func(i, j int) bool { return name(group[i]) < name(group[j]) })
	}
	return out
}

// sortedByName returns policies ordered by name.
func sortedByName[P any](policies []P, name func(P) string) []P {
	out := append([]P(nil), policies...)
	sort.Slice(out, func(i, j int) bool { return name(out[i]) < name(out[j]) })
	return out
}
