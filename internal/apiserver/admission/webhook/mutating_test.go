package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

// patchResponse answers with a JSON patch.
func patchResponse(patch string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(patch), PatchType: ptr(admissionv1.PatchTypeJSONPatch)}
}

// labelAdder adds label key=value unless the object already has it.
func labelAdder(key, value string) reviewHandler {
	return func(_ *http.Request, r *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		var obj metav1.PartialObjectMetadata
		if err := json.Unmarshal(r.Request.Object.Raw, &obj); err != nil {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Message: err.Error()}}
		}
		if obj.Labels[key] == value {
			return &admissionv1.AdmissionResponse{Allowed: true}
		}
		if obj.Labels == nil {
			return patchResponse(`[{"op":"add","path":"/metadata/labels","value":{"` + key + `":"` + value + `"}}]`)
		}
		return patchResponse(`[{"op":"add","path":"/metadata/labels/` + key + `","value":"` + value + `"}]`)
	}
}

func TestMutatingPatchAppliedInPlace(t *testing.T) {
	srv := newWebhookServer(t, labelAdder("injected", "yes"))
	m := NewMutating(Deps{Configs: mutating(mutatingFor("inject.example.com", srv))})
	if m.Name() != "MutatingAdmissionWebhook" {
		t.Errorf("Name() = %q", m.Name())
	}
	a := podCreate("default", map[string]string{"app": "web"})
	pod := a.Object.(*corev1.Pod)
	if err := m.Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if pod.Labels["injected"] != "yes" || pod.Labels["app"] != "web" {
		t.Errorf("labels = %v", pod.Labels)
	}
	if a.Object != pod {
		t.Error("the object was replaced instead of patched in place")
	}
	if !pod.GetObjectKind().GroupVersionKind().Empty() {
		t.Errorf("type metadata changed to %v", pod.GetObjectKind().GroupVersionKind())
	}
	if pod.Spec.Containers[0].Image != "busybox" {
		t.Errorf("spec lost: %+v", pod.Spec)
	}
}

func TestMutatingPatchOnUnstructured(t *testing.T) {
	srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		return patchResponse(`[{"op":"replace","path":"/spec/size","value":3}]`)
	})
	h := mutatingFor("cr.example.com", srv)
	h.Rules[0].APIGroups, h.Rules[0].Resources = []string{"example.com"}, []string{"widgets"}
	m := NewMutating(Deps{Configs: mutating(h)})
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "namespace": "default"},
		"spec":     map[string]any{"size": int64(1)},
	}}
	a := &admission.Attributes{
		Operation: admission.Create, Kind: schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"},
		Resource:  schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"},
		Namespace: "default", Name: "w", Object: obj,
	}
	if err := m.Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if size, _, _ := unstructured.NestedInt64(obj.Object, "spec", "size"); size != 3 {
		t.Errorf("spec.size = %v (%T), want int64 3", obj.Object["spec"], obj.Object["spec"].(map[string]any)["size"])
	}
	if obj.GetAPIVersion() != "example.com/v1" || obj.GetKind() != "Widget" {
		t.Errorf("type = %s %s", obj.GetAPIVersion(), obj.GetKind())
	}
}

func TestMutatingWebhooksRunInNameOrder(t *testing.T) {
	var order []string
	record := func(name string) reviewHandler {
		return func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
			order = append(order, name)
			return &admissionv1.AdmissionResponse{Allowed: true}
		}
	}
	first, second, third := newWebhookServer(t, record("a/1")), newWebhookServer(t, record("a/2")), newWebhookServer(t, record("b/1"))
	cfgs := &fakeConfigs{mutating: []*admissionregistrationv1.MutatingWebhookConfiguration{
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Webhooks: []admissionregistrationv1.MutatingWebhook{mutatingFor("b1.example.com", third)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Webhooks: []admissionregistrationv1.MutatingWebhook{
			mutatingFor("a1.example.com", first), mutatingFor("a2.example.com", second)}},
	}}
	if err := NewMutating(Deps{Configs: cfgs}).Admit(context.Background(), podCreate("default", nil)); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "a/1,a/2,b/1" {
		t.Errorf("order = %v", order)
	}
}

func TestReinvocation(t *testing.T) {
	var firstCalls atomic.Int32
	counting := func(next reviewHandler) reviewHandler {
		return func(r *http.Request, rev *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
			firstCalls.Add(1)
			return next(r, rev)
		}
	}
	tests := []struct {
		name      string
		policy    admissionregistrationv1.ReinvocationPolicyType
		wantCalls int32
	}{
		{"IfNeeded runs again after a later change", admissionregistrationv1.IfNeededReinvocationPolicy, 2},
		{"Never runs once", admissionregistrationv1.NeverReinvocationPolicy, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			firstCalls.Store(0)
			a1 := newWebhookServer(t, counting(labelAdder("first", "1")))
			b1 := newWebhookServer(t, labelAdder("second", "1"))
			first := mutatingFor("first.example.com", a1)
			first.ReinvocationPolicy = ptr(tc.policy)
			m := NewMutating(Deps{Configs: mutating(first, mutatingFor("second.example.com", b1))})
			a := podCreate("default", nil)
			if err := m.Admit(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			if got := firstCalls.Load(); got != tc.wantCalls {
				t.Errorf("first webhook called %d times, want %d", got, tc.wantCalls)
			}
			labels := a.Object.(*corev1.Pod).Labels
			if labels["first"] != "1" || labels["second"] != "1" {
				t.Errorf("labels = %v", labels)
			}
		})
	}
}

func TestReinvocationNotTriggeredWithoutChange(t *testing.T) {
	var calls atomic.Int32
	srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		calls.Add(1)
		return &admissionv1.AdmissionResponse{Allowed: true}
	})
	other := newWebhookServer(t, allow)
	h := mutatingFor("first.example.com", srv)
	h.ReinvocationPolicy = ptr(admissionregistrationv1.IfNeededReinvocationPolicy)
	m := NewMutating(Deps{Configs: mutating(h, mutatingFor("noop.example.com", other))})
	if err := m.Admit(context.Background(), podCreate("default", nil)); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("called %d times though nothing changed the object", calls.Load())
	}
}

func TestMutatingProtocolErrors(t *testing.T) {
	tests := []struct {
		name    string
		resp    *admissionv1.AdmissionResponse
		wantErr string
	}{
		{"patch without type", &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(`[]`)}, "webhook returned response.patch but not response.patchType"},
		{"undecodable patch", patchResponse(`{"op":"add"}`), "received undecodable patch in webhook response"},
		{"unsupported patch type", &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(`[{"op":"remove","path":"/metadata/labels"}]`), PatchType: ptr(admissionv1.PatchType("Merge"))}, `unsupported patch type "Merge"`},
		{"patch failing to apply", patchResponse(`[{"op":"remove","path":"/nope/x"}]`), "Internal error occurred"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse { return tc.resp })
			m := NewMutating(Deps{Configs: mutating(mutatingFor("bad.example.com", srv))})
			err := m.Admit(context.Background(), podCreate("default", nil))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if !apierrors.IsInternalError(err) {
				t.Errorf("err = %#v, want 500", err)
			}
		})
	}
}

func TestMutatingPatchOnDeleteRefused(t *testing.T) {
	srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		return patchResponse(`[{"op":"add","path":"/metadata/labels","value":{}}]`)
	})
	h := mutatingFor("del.example.com", srv)
	h.Rules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}
	m := NewMutating(Deps{Configs: mutating(h)})
	a := podCreate("default", nil)
	a.Operation, a.OldObject, a.Object = admission.Delete, a.Object, nil
	err := m.Admit(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), `admission webhook "del.example.com" attempted to modify the object, which is not supported for this operation`) {
		t.Fatalf("err = %v", err)
	}
}

func TestMutatingDenial(t *testing.T) {
	srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Code: 422, Message: "labels required"}}
	})
	m := NewMutating(Deps{Configs: mutating(mutatingFor("m.example.com", srv))})
	err := m.Admit(context.Background(), podCreate("default", nil))
	if err == nil || err.Error() != `admission webhook "m.example.com" denied the request: labels required` || statusCode(t, err) != 422 {
		t.Fatalf("err = %v", err)
	}
}

// labelMutator is a built-in-like plugin that sets a label (once: it is
// idempotent, as upstream's in-tree plugins are) and counts its calls.
type labelMutator struct {
	key   string
	calls int
}

func (*labelMutator) Name() string { return "TestLabels" }

func (l *labelMutator) Admit(_ context.Context, a *admission.Attributes) error {
	l.calls++
	p := a.Object.(*corev1.Pod)
	if p.Labels[l.key] == "" {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels[l.key] = "set"
	}
	return nil
}

// TestChainReinvocation is upstream's reinvoker through the whole chain:
// a plugin after the webhooks changing the object brings an IfNeeded
// webhook back, and a webhook's change runs the other plugins again.
func TestChainReinvocation(t *testing.T) {
	var calls atomic.Int32
	srv := newWebhookServer(t, func(r *http.Request, rev *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		calls.Add(1)
		return labelAdder("hooked", "1")(r, rev)
	})
	hook := mutatingFor("first.example.com", srv)
	hook.ReinvocationPolicy = ptr(admissionregistrationv1.IfNeededReinvocationPolicy)
	before, after := &labelMutator{key: "before"}, &labelMutator{key: "after"}
	chain := &admission.Chain{Mutators: []admission.Mutator{before, NewMutating(Deps{Configs: mutating(hook)}), after}}
	a := podCreate("default", nil)
	if err := chain.Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("IfNeeded webhook called %d times, want 2: a later plugin changed the object after it", got)
	}
	if before.calls != 2 || after.calls != 2 {
		t.Errorf("built-in plugins ran %d and %d times, want twice each: the webhook changed the object", before.calls, after.calls)
	}
	labels := a.Object.(*corev1.Pod).Labels
	if labels["before"] != "set" || labels["after"] != "set" || labels["hooked"] != "1" {
		t.Errorf("labels = %v", labels)
	}

	// Never: one call, however the object changes after it.
	calls.Store(0)
	hook.ReinvocationPolicy = ptr(admissionregistrationv1.NeverReinvocationPolicy)
	chain.Mutators[1] = NewMutating(Deps{Configs: mutating(hook)})
	if err := chain.Admit(context.Background(), podCreate("default", nil)); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("Never webhook called %d times, want 1", got)
	}
}
