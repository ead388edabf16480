package webhook

import (
	"context"
	"fmt"
	"reflect"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// Mutating is the MutatingAdmissionWebhook plugin.
type Mutating struct{ d *dispatcher }

// NewMutating returns the MutatingAdmissionWebhook plugin.
func NewMutating(d Deps) admission.Mutator { return &Mutating{d: newDispatcher(d)} }

// Name implements admission.Mutator.
func (*Mutating) Name() string { return "MutatingAdmissionWebhook" }

// Admit calls the matching mutating webhooks one after the other (by
// configuration name, then webhook order), applying each one's patch to
// a.Object in place. A webhook that changes the object asks the chain for
// its reinvocation pass (admission.Reinvocation), as upstream's; in that
// pass only the webhooks with reinvocationPolicy IfNeeded that saw an
// older object run again, the object having changed after them in this
// plugin or in a later one.
func (m *Mutating) Admit(ctx context.Context, a *admission.Attributes) error {
	if exempt(a) || m.d.deps.Configs == nil {
		return nil
	}
	hooks := cachedHooks(&m.d.hooks, m.d.deps.Configs.MutatingWebhookConfigurations(), mutatingHooks)
	if len(hooks) == 0 {
		return nil
	}
	r, _ := a.Reinvocation.State(m.Name(), func() any { return &dynamicadmission.Reinvocations{} }).(*dynamicadmission.Reinvocations)
	if r == nil {
		// Called outside a chain: reinvoke within this plugin alone.
		r = &dynamicadmission.Reinvocations{}
		if err := m.round(ctx, a, hooks, r, false); err != nil || !r.AnyPending() {
			return err
		}
		return m.round(ctx, a, hooks, r, true)
	}
	reinvoking := a.Reinvocation.IsReinvoke()
	if reinvoking {
		r.StartPass(a.Object)
	}
	err := m.round(ctx, a, hooks, r, reinvoking)
	if r.Modified() {
		a.Reinvocation.SetShouldReinvoke()
	}
	r.EndPass(a.Object)
	return err
}

func (m *Mutating) round(ctx context.Context, a *admission.Attributes, hooks []*hook, r *dynamicadmission.Reinvocations, reinvoking bool) error {
	for _, h := range hooks {
		match, ok, err := m.d.shouldCall(ctx, h, a)
		if err != nil {
			return err
		}
		// A webhook skipped in the first round is not called for the
		// first time while reinvoking.
		if !ok || (reinvoking && !r.Pending(h.uid)) {
			continue
		}
		changed, err := m.callHook(ctx, h, a, match)
		if changed {
			r.Changed()
		}
		if h.reinvoke {
			r.Ran(h.uid)
		}
		if err == nil {
			continue
		}
		if err := failure(h, err); err != nil {
			return err
		}
		if ctx.Err() != nil {
			// Failing open, but the request itself ran out of time.
			return apierrors.NewTimeoutError("request did not complete within requested timeout", 0)
		}
	}
	return nil
}

// callHook calls h with the write in the form match and applies its
// patch; changed reports whether the object is different afterwards. A
// patch to another version of the object is applied to the converted
// object, which is then converted back, as upstream.
func (m *Mutating) callHook(ctx context.Context, h *hook, a *admission.Attributes, match dynamicadmission.Match) (changed bool, err error) {
	va, err := dynamicadmission.Versioned(ctx, a, match)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	res, err := m.d.call(ctx, h, a, va, match, true)
	if err != nil || len(res.patch) == 0 {
		return false, err
	}
	patch, err := jsonpatch.DecodePatch(res.patch)
	if err != nil {
		return false, &callError{h.name, fmt.Errorf("received undecodable patch in webhook response: %w", err)}
	}
	if len(patch) == 0 {
		return false, nil
	}
	if a.Object == nil {
		return false, apierrors.NewInternalError(fmt.Errorf("admission webhook %q attempted to modify the object, which is not supported for this operation", h.name))
	}
	if res.patchType != admissionv1.PatchTypeJSONPatch {
		return false, &callError{h.name, fmt.Errorf("unsupported patch type %q", res.patchType)}
	}
	changed, err = applyPatch(va.Object, match.Kind, patch)
	if err != nil || !changed || va == a {
		return changed, err
	}
	if err := dynamicadmission.ConvertBack(ctx, a, match, va.Object); err != nil {
		return false, apierrors.NewInternalError(err)
	}
	return true, nil
}

// applyPatch applies patch to obj, of kind gvk, and decodes the result
// into the same Go type, replacing the object's content in place so that
// callers holding the pointer see the change.
func applyPatch(obj runtime.Object, gvk schema.GroupVersionKind, patch jsonpatch.Patch) (bool, error) {
	orig, err := encodeObject(obj, gvk)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	patched, err := patch.Apply(orig)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	target := reflect.ValueOf(obj)
	if target.Kind() != reflect.Pointer || target.IsNil() {
		return false, apierrors.NewInternalError(fmt.Errorf("cannot patch a %T", obj))
	}
	next, ok := reflect.New(target.Elem().Type()).Interface().(runtime.Object)
	if !ok {
		return false, apierrors.NewInternalError(fmt.Errorf("cannot patch a %T", obj))
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(patched, next); err != nil {
		return false, apierrors.NewInternalError(err)
	}
	if _, unstructured := next.(runtime.Unstructured); !unstructured {
		// Keep the type metadata as the caller had it (often empty).
		next.GetObjectKind().SetGroupVersionKind(obj.GetObjectKind().GroupVersionKind())
	}
	changed := !equality.Semantic.DeepEqual(obj, next)
	target.Elem().Set(reflect.ValueOf(next).Elem())
	return changed, nil
}
