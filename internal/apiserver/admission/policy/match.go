package policy

import (
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

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

// definitionMatches checks a policy's matchConstraints.
func (m matcher) definitionMatches(ctx context.Context, a *admission.Attributes, mr *admissionregistrationv1.MatchResources) (bool, error) {
	if mr == nil {
		return false, errors.New("policy contained no match constraints, a required field")
	}
	return m.matches(ctx, a, mr)
}

// bindingMatches checks a binding's matchResources; none selects everything
// the policy selects.
func (m matcher) bindingMatches(ctx context.Context, a *admission.Attributes, mr *admissionregistrationv1.MatchResources) (bool, error) {
	if mr == nil {
		return true, nil
	}
	return m.matches(ctx, a, mr)
}

// matches follows upstream's order: selector errors only count when the
// resource rules select the request.
func (m matcher) matches(ctx context.Context, a *admission.Attributes, mr *admissionregistrationv1.MatchResources) (bool, error) {
	if mr.NamespaceSelector == nil {
		return false, fmt.Errorf(errNilSelector, "namespace")
	}
	if mr.ObjectSelector == nil {
		return false, fmt.Errorf(errNilSelector, "object")
	}
	nsMatch, nsErr := m.namespaceSelectorMatches(ctx, a, mr.NamespaceSelector)
	if !nsMatch && nsErr == nil {
		return false, nil
	}
	objMatch, objErr := objectSelectorMatches(a, mr.ObjectSelector)
	if !objMatch && objErr == nil {
		return false, nil
	}
	if rulesMatch(mr.ExcludeResourceRules, a) {
		return false, nil
	}
	if len(mr.ResourceRules) > 0 && !rulesMatch(mr.ResourceRules, a) {
		return false, nil
	}
	if nsErr != nil {
		return false, nsErr
	}
	if objErr != nil {
		return false, objErr
	}
	return true, nil
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
// name too.
func rulesMatch(rules []admissionregistrationv1.NamedRuleWithOperations, a *admission.Attributes) bool {
	for _, r := range rules {
		if !dynamicadmission.RuleMatches(r.RuleWithOperations, a) {
			continue
		}
		if len(r.ResourceNames) == 0 {
			return true
		}
		for _, name := range r.ResourceNames {
			if name == a.Name {
				return true
			}
		}
	}
	return false
}
