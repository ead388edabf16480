package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// Validating is the ValidatingAdmissionWebhook plugin.
type Validating struct{ d *dispatcher }

// NewValidating returns the ValidatingAdmissionWebhook plugin.
func NewValidating(d Deps) admission.Validator { return &Validating{d: newDispatcher(d)} }

// Name implements admission.Validator.
func (*Validating) Name() string { return "ValidatingAdmissionWebhook" }

// Validate calls the matching validating webhooks in parallel; the first
// refusal or failure (in webhook order) is the write's error.
func (v *Validating) Validate(ctx context.Context, a *admission.Attributes) error {
	if exempt(a) || v.d.deps.Configs == nil {
		return nil
	}
	hooks := cachedHooks(&v.d.hooks, v.d.deps.Configs.ValidatingWebhookConfigurations(), validatingHooks)
	var relevant []invocation
	// versions holds the write converted once per kind a webhook matched.
	versions := map[schema.GroupVersionKind]*admission.Attributes{}
	for _, h := range hooks {
		m, ok, err := v.d.shouldCall(ctx, h, a)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if versions[m.Kind] == nil {
			va, err := dynamicadmission.Versioned(ctx, a, m)
			if err != nil {
				return apierrors.NewInternalError(err)
			}
			versions[m.Kind] = va
		}
		relevant = append(relevant, invocation{hook: h, match: m})
	}
	if len(relevant) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return apierrors.NewTimeoutError("request did not complete within requested timeout", 0)
	}
	errs := make([]error, len(relevant))
	var wg sync.WaitGroup
	for i, inv := range relevant {
		wg.Go(func() { errs[i] = v.callHook(ctx, inv, a, versions[inv.match.Kind]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// callHook calls one webhook; a panic fails only this call.
func (v *Validating) callHook(ctx context.Context, inv invocation, a, va *admission.Attributes) (err error) {
	h := inv.hook
	defer func() {
		if r := recover(); r != nil {
			slog.Error("validating webhook call panicked", "webhook", h.name, "panic", r)
			err = nil
			if !h.ignoreFailures {
				err = apierrors.NewInternalError(fmt.Errorf("ValidatingAdmissionWebhook/%v has panicked: %v", h.name, r))
			}
		}
	}()
	if _, err := v.d.call(ctx, h, a, va, inv.match, false); err != nil {
		return failure(h, err)
	}
	return nil
}
