package policy

import (
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

type (
	mapPolicy  = admissionregistrationv1.MutatingAdmissionPolicy
	mapBinding = admissionregistrationv1.MutatingAdmissionPolicyBinding
)

// Mutating is the MutatingAdmissionPolicy admission plugin.
type Mutating struct {
	deps    Deps
	matcher matcher
	authz   authorizer.UnconditionalAuthorizer
	cache   compileCache[*compiledMutating]
}

// NewMutating returns the MutatingAdmissionPolicy plugin.
func NewMutating(d Deps) admission.Mutator {
	m := &Mutating{deps: d, matcher: matcher{namespaces: d.Namespaces}}
	if d.Authorizer != nil {
		m.authz = dynamicadmission.NewCELAuthorizer(d.Authorizer)
	}
	return m
}

// typeConverter is the schema of kind for apply configurations, if known.
func (m *Mutating) typeConverter(kind schema.GroupVersionKind) managedfields.TypeConverter {
	if m.deps.TypeConverter == nil {
		return nil
	}
	return m.deps.TypeConverter(kind)
}

// Name implements admission.Mutator.
func (*Mutating) Name() string { return "MutatingAdmissionPolicy" }

// invocation is one policy applied through one binding with one param.
type invocation struct {
	policy   *mapPolicy
	binding  *mapBinding
	param    *unstructured.Unstructured
	compiled *compiledMutating
	// match is the form of the request the policy matched, the version
	// its mutations see and write.
	match dynamicadmission.Match
}

// policyError is an error a policy's failurePolicy decides about.
type policyError struct {
	policy, binding string
	failOpen        bool
	err             error
	reason          metav1.StatusReason
}

func (e policyError) message() string {
	if e.binding != "" {
		return fmt.Sprintf("policy '%s' with binding '%s' denied request: %s", e.policy, e.binding, e.err)
	}
	return fmt.Sprintf("policy %q denied request: %s", e.policy, e.err)
}

// Admit applies the mutations of every policy whose bindings select the
// request, in policy name order, each seeing the result of the previous.
// A mutation that changes the object asks the chain for its reinvocation
// pass (admission.Reinvocation), as upstream's; in that pass only the
// policies with reinvocationPolicy IfNeeded that saw an older object run
// again, the object having changed after them here or in a later plugin.
func (m *Mutating) Admit(ctx context.Context, a *admission.Attributes) error {
	if m.deps.Policies == nil || exempt(a) {
		return nil
	}
	invocations, errs := m.invocations(ctx, a)
	if len(invocations) == 0 {
		return mutationError(a, errs)
	}
	ns, err := namespaceOf(ctx, m.deps.Namespaces, a)
	if err != nil {
		var statusErr *apierrors.StatusError
		if errors.As(err, &statusErr) {
			return statusErr
		}
		return apierrors.NewNotFound(dynamicadmission.NamespacesResource.GroupResource(), a.Namespace)
	}
	r, _ := a.Reinvocation.State(m.Name(), func() any { return &dynamicadmission.Reinvocations{} }).(*dynamicadmission.Reinvocations)
	alone := r == nil // called outside a chain: reinvoke within this plugin
	if alone {
		r = &dynamicadmission.Reinvocations{}
	}
	reinvoking := a.Reinvocation.IsReinvoke()
	if reinvoking {
		r.StartPass(a.Object)
	}
	pass := func(reinvoking bool) error {
		for _, inv := range invocations {
			key := inv.key()
			if reinvoking && !r.Pending(key) {
				continue
			}
			changed, invErrs, err := m.invoke(ctx, a, ns, inv)
			if err != nil {
				return err
			}
			errs = append(errs, invErrs...)
			if changed {
				r.Changed()
			}
			if inv.policy.Spec.ReinvocationPolicy == admissionregistrationv1.IfNeededReinvocationPolicy {
				r.Ran(key)
			}
		}
		return nil
	}
	if err := pass(reinvoking); err != nil {
		return err
	}
	switch {
	case alone && r.AnyPending():
		if err := pass(true); err != nil {
			return err
		}
	case r.Modified():
		a.Reinvocation.SetShouldReinvoke()
	}
	r.EndPass(a.Object)
	return mutationError(a, errs)
}

// key names an invocation across the two passes: policy, binding, param.
func (inv invocation) key() string {
	k := inv.policy.Name + "/" + inv.binding.Name
	if inv.param != nil {
		k += "/" + inv.param.GetNamespace() + "/" + inv.param.GetName()
	}
	return k
}

// invocations selects the policy, binding and param triples for the
// request; configuration errors are returned for the failure policies.
func (m *Mutating) invocations(ctx context.Context, a *admission.Attributes) ([]invocation, []policyError) {
	bindings := bindingsByPolicy(m.deps.Policies.MutatingAdmissionPolicyBindings(),
		func(b *mapBinding) string { return b.Spec.PolicyName },
		func(b *mapBinding) string { return b.Name })
	policies := sortedByName(m.deps.Policies.MutatingAdmissionPolicies(), func(p *mapPolicy) string { return p.Name })

	live := make(map[types.UID]bool, len(policies))
	var out []invocation
	var errs []policyError
	for _, p := range policies {
		live[p.UID] = true
		bs := bindings[p.Name]
		if len(bs) == 0 {
			continue
		}
		paramGVK, hasParamKind, err := paramKindGVK(p.Spec.ParamKind)
		if err != nil {
			continue // upstream leaves a policy with an unparsable paramKind out
		}
		failOpen := p.Spec.FailurePolicy != nil && *p.Spec.FailurePolicy == admissionregistrationv1.Ignore
		match, matches, err := m.matcher.definitionMatches(ctx, a, p.Spec.MatchConstraints)
		if err == nil && matches {
			err = paramKindError(m.deps.Params, paramGVK, hasParamKind)
		}
		if err != nil {
			errs = append(errs, policyError{policy: p.Name, failOpen: failOpen, err: configError(err, false)})
			continue
		}
		if !matches {
			continue
		}
		compiled := m.cache.get(p.UID, p.ResourceVersion, func() *compiledMutating { return compileMutating(p) })
		for _, b := range bs {
			matches, err := m.matcher.bindingMatches(ctx, a, b.Spec.MatchResources)
			if err == nil && matches {
				var params []*unstructured.Unstructured
				params, err = collectParams(ctx, m.deps.Params, paramGVK, hasParamKind, b.Spec.ParamRef, requestNamespace(a))
				for _, param := range params {
					out = append(out, invocation{policy: p, binding: b, param: param, compiled: compiled, match: match})
				}
			}
			if err != nil {
				errs = append(errs, policyError{policy: p.Name, binding: b.Name, failOpen: failOpen, err: configError(err, true)})
			}
		}
	}
	m.cache.retain(live)
	return out, errs
}

// invoke runs one invocation's match conditions and mutations. A
// StatusError (an internal failure) ends admission at once, as upstream.
func (m *Mutating) invoke(ctx context.Context, a *admission.Attributes, ns *corev1.Namespace, inv invocation) (changed bool, errs []policyError, fatal error) {
	c := inv.compiled
	fail := func(err error) policyError {
		return policyError{policy: inv.policy.Name, binding: inv.binding.Name, failOpen: c.failOpen(), err: err, reason: metav1.StatusReasonInvalid}
	}
	// The mutations see and change the object in the version the policy
	// matched; a changed object is converted back, as upstream.
	va, err := dynamicadmission.Versioned(ctx, a, inv.match)
	if err != nil {
		return false, []policyError{fail(err)}, nil
	}
	in := input{
		attrs: va, object: va.Object, params: inv.param, namespace: ns, authz: m.authz,
		matchKind: metav1.GroupVersionKind(inv.match.Kind), matchRes: metav1.GroupVersionResource(inv.match.Resource),
	}
	if c.envErr != nil {
		return false, []policyError{fail(c.envErr)}, nil
	}
	matches, err := c.matchConditionsMatch(ctx, in)
	if err != nil {
		return false, []policyError{fail(err)}, nil
	}
	if !matches {
		return false, nil, nil
	}
	var before = va.Object
	if va.Object != nil {
		before = va.Object.DeepCopyObject()
	}
	for _, mu := range c.mutations {
		if va.Object == nil {
			continue // nothing to patch (delete)
		}
		in.object = va.Object
		if err := c.apply(ctx, mu, in, m.typeConverter(inv.match.Kind)); err != nil {
			var statusErr *apierrors.StatusError
			if errors.As(err, &statusErr) {
				return false, nil, statusErr
			}
			errs = append(errs, fail(err))
		}
	}
	changed = !equality.Semantic.DeepEqual(before, va.Object)
	if changed && va != a {
		if err := dynamicadmission.ConvertBack(ctx, a, inv.match, va.Object); err != nil {
			return false, nil, apierrors.NewInternalError(err)
		}
	}
	return changed, errs, nil
}

// mutationError refuses the request for the errors the failure policies
// keep: upstream's Forbidden, with the first error's message and reason and
// every error as a cause.
func mutationError(a *admission.Attributes, errs []policyError) error {
	var kept []policyError
	for _, e := range errs {
		if !e.failOpen {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	err := forbidden(a, "admission request denied by policy")
	err.ErrStatus.Message = kept[0].message()
	if kept[0].reason != "" {
		err.ErrStatus.Reason = kept[0].reason
	}
	for _, e := range kept {
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{Message: e.message()})
	}
	return err
}
