package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

const errNilSelector = "a nil %s selector was passed, please ensure selectors are initialized properly"

// exempt reports the kinds policies never apply to: the admission
// configuration objects themselves.
func exempt(a *admission.Attributes) bool {
	return dynamicadmission.IsAdmissionConfigurationKind(a.Kind)
}

// requestNamespace is the namespace upstream's admission attributes carry:
// a Namespace's own name for requests on the namespace object.
func requestNamespace(a *admission.Attributes) string {
	if a.Namespace == "" && a.Resource == dynamicadmission.NamespacesResource && a.Subresource == "" {
		return a.Name
	}
	return a.Namespace
}

// matcher decides whether match resources select a request.
type matcher struct {
	namespaces NamespaceGetter
}

// definitionMatches checks a policy's matchConstraints, and reports the
// form of the request its rules selected (another version of the resource
// under matchPolicy Equivalent): the kind CEL sees the object in.
func (m matcher) definitionMatches(ctx context.Context, a *admission.Attributes, mr *admissionregistrationv1.MatchResources) (dynamicadmission.Match, bool, error) {
	if mr == nil {
		return dynamicadmission.Match{}, false, errors.New("policy contained no match constraints, a required field")
	}
	return m.matches(ctx, a, mr)
}

// bindingMatches checks a binding's matchResources; none selects everything
// the policy selects. The policy's matched form is what CEL sees, so the
// binding's is not reported, as upstream.
func (m matcher) bindingMatches(ctx context.Context, a *admission.Attributes, mr *admissionregistrationv1.MatchResources) (bool, error) {
	if mr == nil {
		return true, nil
	}
	_, ok, err := m.matches(ctx, a, mr)
	return ok, err
}

// matches follows upstream's order: selector errors only count when the
// resource rules select the request. matchPolicy applies to the exclude
// rules too.
func (m matcher) matches(ctx context.Context, a *admission.Attributes, mr *admissionregistrationv1.MatchResources) (dynamicadmission.Match, bool, error) {
	var none dynamicadmission.Match
	if mr.NamespaceSelector == nil {
		return none, false, fmt.Errorf(errNilSelector, "namespace")
	}
	if mr.ObjectSelector == nil {
		return none, false, fmt.Errorf(errNilSelector, "object")
	}
	nsMatch, nsErr := m.namespaceSelectorMatches(ctx, a, mr.NamespaceSelector)
	if !nsMatch && nsErr == nil {
		return none, false, nil
	}
	objMatch, objErr := objectSelectorMatches(a, mr.ObjectSelector)
	if !objMatch && objErr == nil {
		return none, false, nil
	}
	equivalent := dynamicadmission.Equivalent(mr.MatchPolicy)
	if _, excluded, err := rulesMatch(mr.ExcludeResourceRules, equivalent, a); excluded || err != nil {
		return none, false, err
	}
	match := dynamicadmission.RequestMatch(a)
	if len(mr.ResourceRules) > 0 {
		var ok bool
		var err error
		if match, ok, err = rulesMatch(mr.ResourceRules, equivalent, a); err != nil || !ok {
			return none, false, err
		}
	}
	if nsErr != nil {
		return none, false, nsErr
	}
	if objErr != nil {
		return none, false, objErr
	}
	return match, true, nil
}

func (m matcher) namespaceSelectorMatches(ctx context.Context, a *admission.Attributes, ls *metav1.LabelSelector) (bool, error) {
	ns := requestNamespace(a)
	if ns == "" && a.Resource.Resource != "namespaces" {
		// Cluster-scoped resources other than namespaces are never exempted.
		return true, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	if selector.Empty() {
		return true, nil
	}
	nsLabels, err := m.namespaceLabels(ctx, a, ns)
	if apierrors.IsNotFound(err) {
		return false, err
	}
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	return selector.Matches(labels.Set(nsLabels)), nil
}

// namespaceLabels reads the labels of the request's namespace; a namespace
// being created or updated is judged by its new labels.
func (m matcher) namespaceLabels(ctx context.Context, a *admission.Attributes, ns string) (map[string]string, error) {
	if a.Resource.Resource == "namespaces" && a.Subresource == "" && (a.Operation == admission.Create || a.Operation == admission.Update) {
		acc, err := meta.Accessor(a.Object)
		if err != nil {
			return nil, err
		}
		return acc.GetLabels(), nil
	}
	if m.namespaces == nil {
		return nil, apierrors.NewNotFound(dynamicadmission.NamespacesResource.GroupResource(), ns)
	}
	obj, err := m.namespaces.GetNamespace(ctx, ns)
	if err != nil {
		return nil, err
	}
	return obj.Labels, nil
}

func objectSelectorMatches(a *admission.Attributes, ls *metav1.LabelSelector) (bool, error) {
	selector, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	return dynamicadmission.ObjectSelectorMatches(selector, a), nil
}

// rulesMatch reports whether any rule selects the request, by resource
// name too, and in which form: as requested, or when equivalent (matchPolicy
// Equivalent) and no rule selects that, through the first other version of
// its resource a rule (earlier rules first) selects, as upstream.
func rulesMatch(rules []admissionregistrationv1.NamedRuleWithOperations, equivalent bool, a *admission.Attributes) (dynamicadmission.Match, bool, error) {
	for _, r := range rules {
		if dynamicadmission.RuleMatches(r.RuleWithOperations, a) && namesMatch(r.ResourceNames, a.Name) {
			return dynamicadmission.RequestMatch(a), true, nil
		}
	}
	if !equivalent {
		return dynamicadmission.Match{}, false, nil
	}
	return dynamicadmission.EquivalentMatch(a, len(rules), func(i int, gvr schema.GroupVersionResource) bool {
		return dynamicadmission.RuleMatchesResource(rules[i].RuleWithOperations, a, gvr) && namesMatch(rules[i].ResourceNames, a.Name)
	})
}

// namesMatch applies a rule's resourceNames; none selects every name.
func namesMatch(names []string, name string) bool {
	return len(names) == 0 || slices.Contains(names, name)
}
