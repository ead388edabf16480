// Package webhook implements the MutatingAdmissionWebhook and
// ValidatingAdmissionWebhook admission plugins: writes matching the rules
// of admissionregistration.k8s.io/v1 webhook configurations are sent as
// AdmissionReviews to HTTPS webhooks, which may refuse them or (mutating
// webhooks) patch the object, behaving like kube-apiserver on the wire.
package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// Deps are what the webhook plugins read from the server.
type Deps struct {
	// Configs lists the current webhook configurations.
	Configs ConfigLister
	// Namespaces gives namespaces' labels to namespaceSelectors.
	Namespaces NamespaceGetter
	// Resolver finds an address to dial for webhooks behind a Service.
	Resolver ServiceResolver
	// Authorizer answers the authorizer variable of match conditions;
	// without one those checks are denied.
	Authorizer authz.Authorizer
	// Caller makes the calls; nil builds one from Resolver.
	Caller *Caller
}

// dispatcher holds what the two plugins share.
type dispatcher struct {
	deps   Deps
	caller *Caller
	hooks  hookCache
	// warnMu guards Attributes.Warnings, appended to by parallel calls.
	warnMu sync.Mutex
}

func newDispatcher(d Deps) *dispatcher {
	c := d.Caller
	if c == nil {
		c = NewCaller(d.Resolver)
	}
	return &dispatcher{deps: d, caller: c}
}

// callError is a failure to get a usable answer from a webhook (not a
// refusal): failurePolicy decides whether it fails the write.
type callError struct {
	webhook string
	reason  error
}

func (e *callError) Error() string {
	return fmt.Sprintf("failed calling webhook %q: %v", e.webhook, e.reason)
}

func (e *callError) Unwrap() error { return e.reason }

// call sends write a to h, with va the write in the version of m (the form
// h's rules matched), and returns its checked answer. A refusal is a
// *apierrors.StatusError; a transport or protocol failure a *callError.
func (d *dispatcher) call(ctx context.Context, h *hook, a, va *admission.Attributes, m dynamicadmission.Match, mutating bool) (*reviewResult, error) {
	if a.DryRun {
		if h.sideEffects == nil {
			return nil, &callError{h.name, fmt.Errorf("Webhook SideEffects is nil")}
		}
		if s := *h.sideEffects; s != admissionregistrationv1.SideEffectClassNone && s != admissionregistrationv1.SideEffectClassNoneOnDryRun {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("admission webhook %q does not support dry run", h.name))
		}
	}
	version, ok := reviewVersion(h.reviewVersions)
	if !ok {
		return nil, &callError{h.name, fmt.Errorf("could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)")}
	}
	uid := uuid.NewUUID()
	review, err := newReview(version, uid, va, m)
	if err != nil {
		return nil, &callError{h.name, fmt.Errorf("could not create admission objects: %w", err)}
	}
	var answer admissionv1.AdmissionReview
	if err := d.caller.Post(ctx, h.client, h.timeout, review, &answer); err != nil {
		return nil, &callError{h.name, fmt.Errorf("failed to call webhook: %w", err)}
	}
	res, err := verifyResponse(version, uid, mutating, &answer)
	if err != nil {
		return nil, &callError{h.name, fmt.Errorf("received invalid webhook response: %w", err)}
	}
	d.addWarnings(a, res.warnings)
	if !res.allowed {
		return nil, denial(h.name, res.status)
	}
	return res, nil
}

func (d *dispatcher) addWarnings(a *admission.Attributes, w []string) {
	if len(w) == 0 {
		return
	}
	d.warnMu.Lock()
	defer d.warnMu.Unlock()
	a.Warnings = append(a.Warnings, w...)
}

// failure turns a failed call into the write's error, or nil when the
// webhook's failurePolicy is Ignore. Refusals and errors that are not
// call failures always fail the write.
func failure(h *hook, err error) error {
	ce, ok := err.(*callError)
	if !ok {
		return err
	}
	if !h.ignoreFailures {
		slog.Warn("failed calling webhook, failing closed", "webhook", h.name, "err", err)
		return apierrors.NewInternalError(ce)
	}
	slog.Warn("failed calling webhook, failing open", "webhook", h.name, "err", err)
	return nil
}

// denial is upstream's error for a webhook's refusal: the webhook's status,
// at least 400, with a message naming the webhook.
func denial(name string, result *metav1.Status) *apierrors.StatusError {
	st := metav1.Status{Status: metav1.StatusFailure}
	if result != nil {
		st = *result
	}
	if st.Code < http.StatusBadRequest {
		st.Code = http.StatusBadRequest
	}
	if st.Status == "" || st.Status == metav1.StatusSuccess {
		st.Status = metav1.StatusFailure
	}
	deniedBy := fmt.Sprintf("admission webhook %q denied the request", name)
	switch {
	case st.Message != "":
		st.Message = deniedBy + ": " + st.Message
	case st.Reason != "":
		st.Message = deniedBy + ": " + string(st.Reason)
	default:
		st.Message = deniedBy + " without explanation"
	}
	return &apierrors.StatusError{ErrStatus: st}
}
