package policy

import (
	"context"
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

type (
	vap        = admissionregistrationv1.ValidatingAdmissionPolicy
	vapBinding = admissionregistrationv1.ValidatingAdmissionPolicyBinding
)

// Validating is the ValidatingAdmissionPolicy admission plugin.
type Validating struct {
	deps    Deps
	matcher matcher
	authz   authorizer.UnconditionalAuthorizer
	cache   compileCache[*compiledValidating]
}

// NewValidating returns the ValidatingAdmissionPolicy plugin.
func NewValidating(d Deps) admission.Validator {
	v := &Validating{deps: d, matcher: matcher{namespaces: d.Namespaces}}
	if d.Authorizer != nil {
		v.authz = dynamicadmission.NewCELAuthorizer(d.Authorizer)
	}
	return v
}

// Name implements admission.Validator.
func (*Validating) Name() string { return "ValidatingAdmissionPolicy" }

// denial is a decision that refuses the request, with the policy and
// binding (empty for a policy-level configuration error) behind it.
type denial struct {
	policy  string
	binding string
	decision
}

// Validate evaluates every policy whose bindings select the request. All
// denials are collected; the first one is reported, as upstream.
func (v *Validating) Validate(ctx context.Context, a *admission.Attributes) error {
	if v.deps.Policies == nil || exempt(a) {
		return nil
	}
	bindings := bindingsByPolicy(v.deps.Policies.ValidatingAdmissionPolicyBindings(),
		func(b *vapBinding) string { return b.Spec.PolicyName },
		func(b *vapBinding) string { return b.Name })
	policies := sortedByName(v.deps.Policies.ValidatingAdmissionPolicies(), func(p *vap) string { return p.Name })

	live := make(map[types.UID]bool, len(policies))
	var denials []denial
	for _, p := range policies {
		live[p.UID] = true
		ds, err := v.evaluatePolicy(ctx, a, p, bindings[p.Name])
		if err != nil {
			return err
		}
		denials = append(denials, ds...)
	}
	v.cache.retain(live)
	if len(denials) == 0 {
		return nil
	}
	return denyError(a, denials[0])
}

func (v *Validating) evaluatePolicy(ctx context.Context, a *admission.Attributes, p *vap, bindings []*vapBinding) ([]denial, error) {
	if len(bindings) == 0 {
		return nil, nil
	}
	paramGVK, hasParamKind, err := paramKindGVK(p.Spec.ParamKind)
	if err != nil {
		// Upstream leaves a policy with an unparsable paramKind out.
		return nil, nil
	}
	match, matches, err := v.matcher.definitionMatches(ctx, a, p.Spec.MatchConstraints)
	if err == nil && matches {
		err = paramKindError(v.deps.Params, paramGVK, hasParamKind)
	}
	if err != nil {
		return configDenial(p.Name, "", p.Spec.FailurePolicy, err), nil
	}
	if !matches {
		return nil, nil
	}
	compiled := v.cache.get(p.UID, p.ResourceVersion, func() *compiledValidating { return compileValidating(p) })

	var denials []denial
	for _, b := range bindings {
		matches, err := v.matcher.bindingMatches(ctx, a, b.Spec.MatchResources)
		if err != nil {
			denials = append(denials, configDenial(p.Name, b.Name, p.Spec.FailurePolicy, err)...)
			continue
		}
		if !matches {
			continue
		}
		params, err := collectParams(ctx, v.deps.Params, paramGVK, hasParamKind, b.Spec.ParamRef, requestNamespace(a))
		if err != nil {
			denials = append(denials, configDenial(p.Name, b.Name, p.Spec.FailurePolicy, err)...)
			continue
		}
		ns, err := namespaceOf(ctx, v.deps.Namespaces, a)
		if err != nil {
			return nil, err
		}
		// CEL sees the objects in the version the policy matched.
		va, err := dynamicadmission.Versioned(ctx, a, match)
		if err != nil {
			denials = append(denials, configDenial(p.Name, "", p.Spec.FailurePolicy, err)...)
			continue
		}
		for _, param := range params {
			in := input{
				attrs: va, object: va.Object, params: param, namespace: ns, authz: v.authz,
				matchKind: metav1.GroupVersionKind(match.Kind), matchRes: metav1.GroupVersionResource(match.Resource),
			}
			decisions, auditDenials := compiled.validate(ctx, in)
			for _, d := range decisions {
				if !d.deny {
					continue
				}
				denials = append(denials, applyActions(a, p.Name, b, d)...)
			}
			for _, d := range auditDenials {
				denials = append(denials, denial{policy: p.Name, binding: b.Name, decision: d})
			}
		}
	}
	return denials, nil
}

// applyActions carries out a binding's validationActions for a failed
// validation: Deny refuses, Warn adds a warning, Audit is not recorded
// (Skiff has no audit log).
func applyActions(a *admission.Attributes, policy string, b *vapBinding, d decision) []denial {
	var out []denial
	for _, action := range b.Spec.ValidationActions {
		switch action {
		case admissionregistrationv1.Deny:
			out = append(out, denial{policy: policy, binding: b.Name, decision: d})
		case admissionregistrationv1.Warn:
			w := fmt.Sprintf("Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s", policy, b.Name, d.message)
			if !slices.Contains(a.Warnings, w) { // upstream's recorder drops repeats
				a.Warnings = append(a.Warnings, w)
			}
		}
	}
	return out
}

// configDenial applies the policy's failurePolicy to a configuration error.
func configDenial(policy, binding string, fp *admissionregistrationv1.FailurePolicyType, err error) []denial {
	f := admissionregistrationv1.Fail
	if fp != nil {
		f = *fp
	}
	switch f {
	case admissionregistrationv1.Ignore:
		return nil
	case admissionregistrationv1.Fail:
		return []denial{{policy: policy, binding: binding, decision: decision{deny: true, message: configError(err, binding != "").Error()}}}
	}
	return []denial{{policy: policy, binding: binding, decision: decision{deny: true, message: fmt.Sprintf("unrecognized failure policy: '%v'", f)}}}
}

// denyError is upstream's refusal: Forbidden's message and details, with
// the code and reason of the validation.
func denyError(a *admission.Attributes, d denial) error {
	var message string
	if d.binding != "" {
		message = fmt.Sprintf("ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s", d.policy, d.binding, d.message)
	} else {
		message = fmt.Sprintf("ValidatingAdmissionPolicy '%s' denied request: %s", d.policy, d.message)
	}
	err := forbidden(a, message)
	reason := d.reason
	if reason == "" {
		reason = metav1.StatusReasonInvalid
	}
	err.ErrStatus.Reason = reason
	err.ErrStatus.Code = reasonCode(reason)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Message: message})
	return err
}

// namespaceOf reads the namespace of a namespaced request for
// namespaceObject. A Namespace's own requests get none, as upstream.
func namespaceOf(ctx context.Context, getter NamespaceGetter, a *admission.Attributes) (*corev1.Namespace, error) {
	if a.Namespace == "" || getter == nil || (a.Kind.Group == "" && a.Kind.Version == "v1" && a.Kind.Kind == "Namespace") {
		return nil, nil
	}
	return getter.GetNamespace(ctx, a.Namespace)
}
