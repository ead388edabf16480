package webhook

import (
	"context"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// excludedResources are the reviews webhooks may not intercept, as upstream
// excludes them (ExcludeAdmissionWebhookVirtualResources, on in 1.37).
var excludedResources = map[schema.GroupResource]bool{
	{Group: "authentication.k8s.io", Resource: "selfsubjectreviews"}:       true,
	{Group: "authentication.k8s.io", Resource: "tokenreviews"}:             true,
	{Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews"}: true,
	{Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews"}:  true,
	{Group: "authorization.k8s.io", Resource: "selfsubjectrulesreviews"}:   true,
	{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}:      true,
}

// exempt reports the writes never sent to webhooks: the admission
// configuration objects and the excluded reviews.
func exempt(a *admission.Attributes) bool {
	return dynamicadmission.IsAdmissionConfigurationKind(a.Kind) || excludedResources[a.Resource.GroupResource()]
}

// shouldCall decides whether h applies to the write, and in which form:
// rules and selectors first (a selector error only matters when nothing
// else excludes the write, as upstream), then match conditions, which see
// the write in the form the rules matched.
func (d *dispatcher) shouldCall(ctx context.Context, h *hook, a *admission.Attributes) (dynamicadmission.Match, bool, error) {
	var none dynamicadmission.Match
	m, ok, err := matchRules(h, a)
	if err != nil {
		return none, false, apierrors.NewInternalError(err)
	}
	if !ok {
		return none, false, nil
	}
	if h.objectSelectorErr == nil && !dynamicadmission.ObjectSelectorMatches(h.objectSelector, a) {
		return none, false, nil
	}
	if h.namespaceSelectorErr != nil {
		return none, false, apierrors.NewInternalError(h.namespaceSelectorErr)
	}
	if ok, err := d.matchesNamespace(ctx, h.namespaceSelector, a); err != nil || !ok {
		return none, false, err
	}
	if h.objectSelectorErr != nil {
		return none, false, apierrors.NewInternalError(h.objectSelectorErr)
	}
	if len(h.conditions) == 0 {
		return m, true, nil
	}
	va, err := dynamicadmission.Versioned(ctx, a, m)
	if err != nil {
		return none, false, apierrors.NewInternalError(err)
	}
	vars, err := d.conditionVars(va, m)
	if err != nil {
		return none, false, apierrors.NewInternalError(err)
	}
	ok, err = evalConditions(ctx, h.conditions, vars)
	if err != nil {
		if h.ignoreFailures {
			return none, false, nil
		}
		slog.Warn("failed evaluating match conditions, failing closed", "webhook", h.name, "err", err)
		return none, false, apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, err)
	}
	return m, ok, nil
}

// matchRules finds the form of the write h's rules select: the write as
// requested, or with matchPolicy Equivalent the first other version of its
// resource a rule (earlier rules first) selects, as upstream.
func matchRules(h *hook, a *admission.Attributes) (dynamicadmission.Match, bool, error) {
	for _, r := range h.rules {
		if dynamicadmission.RuleMatches(r, a) {
			return dynamicadmission.RequestMatch(a), true, nil
		}
	}
	if !h.equivalent {
		return dynamicadmission.Match{}, false, nil
	}
	return dynamicadmission.EquivalentMatch(a, len(h.rules), func(i int, gvr schema.GroupVersionResource) bool {
		return dynamicadmission.RuleMatchesResource(h.rules[i], a, gvr)
	})
}

// matchesNamespace applies a namespaceSelector. Cluster-scoped objects
// other than namespaces always match; a namespace being created or updated
// is judged by its new labels.
func (d *dispatcher) matchesNamespace(ctx context.Context, sel labels.Selector, a *admission.Attributes) (bool, error) {
	ns := requestNamespace(a)
	isNamespace := a.Resource.GroupResource() == dynamicadmission.NamespacesResource.GroupResource()
	if ns == "" && !isNamespace {
		return true, nil
	}
	if sel.Empty() {
		return true, nil
	}
	if isNamespace && a.Subresource == "" && (a.Operation == admission.Create || a.Operation == admission.Update) {
		m, err := meta.Accessor(a.Object)
		if err != nil {
			return false, apierrors.NewInternalError(err)
		}
		return sel.Matches(labels.Set(m.GetLabels())), nil
	}
	if d.deps.Namespaces == nil {
		return false, apierrors.NewInternalError(fmt.Errorf("no namespace source to match the namespaceSelector"))
	}
	namespace, err := d.deps.Namespaces.GetNamespace(ctx, ns)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return false, err // upstream answers 404 for a missing namespace
		}
		return false, apierrors.NewInternalError(err)
	}
	return sel.Matches(labels.Set(namespace.Labels)), nil
}
