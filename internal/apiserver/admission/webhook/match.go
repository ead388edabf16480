package webhook

import (
	"context"
	"fmt"
	"log/slog"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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

// shouldCall decides whether h applies to the write: rules and selectors
// first (a selector error only matters when nothing else excludes the
// write, as upstream), then match conditions. Skiff serves one version
// per resource, so matchPolicy Equivalent matches what Exact does.
func (d *dispatcher) shouldCall(ctx context.Context, h *hook, a *admission.Attributes) (bool, error) {
	if !matchesRules(h.rules, a) {
		return false, nil
	}
	if h.objectSelectorErr == nil && !dynamicadmission.ObjectSelectorMatches(h.objectSelector, a) {
		return false, nil
	}
	if h.namespaceSelectorErr != nil {
		return false, apierrors.NewInternalError(h.namespaceSelectorErr)
	}
	if ok, err := d.matchesNamespace(ctx, h.namespaceSelector, a); err != nil || !ok {
		return false, err
	}
	if h.objectSelectorErr != nil {
		return false, apierrors.NewInternalError(h.objectSelectorErr)
	}
	if len(h.conditions) == 0 {
		return true, nil
	}
	vars, err := d.conditionVars(a)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	ok, err := evalConditions(ctx, h.conditions, vars)
	if err != nil {
		if h.ignoreFailures {
			return false, nil
		}
		slog.Warn("failed evaluating match conditions, failing closed", "webhook", h.name, "err", err)
		return false, apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, err)
	}
	return ok, nil
}

func matchesRules(rules []admissionregistrationv1.RuleWithOperations, a *admission.Attributes) bool {
	for _, r := range rules {
		if dynamicadmission.RuleMatches(r, a) {
			return true
		}
	}
	return false
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
