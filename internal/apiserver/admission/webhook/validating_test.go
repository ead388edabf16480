package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

func TestValidatingAllowSendsUpstreamRequest(t *testing.T) {
	srv := newWebhookServer(t, allow)
	v := NewValidating(Deps{Configs: validating(validatingFor("check.example.com", srv))})
	if v.Name() != "ValidatingAdmissionWebhook" {
		t.Errorf("Name() = %q", v.Name())
	}
	a := podCreate("default", map[string]string{"app": "web"})
	if err := v.Validate(context.Background(), a); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	review := srv.last()
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" {
		t.Errorf("review type = %s %s", review.APIVersion, review.Kind)
	}
	req := review.Request
	if req.UID == "" {
		t.Error("request uid is empty")
	}
	wantKind := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	wantRes := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	if req.Kind != wantKind || req.Resource != wantRes || *req.RequestKind != wantKind || *req.RequestResource != wantRes {
		t.Errorf("kind/resource = %v %v %v %v", req.Kind, req.Resource, req.RequestKind, req.RequestResource)
	}
	if req.Name != "p" || req.Namespace != "default" || req.Operation != admissionv1.Create {
		t.Errorf("name/namespace/operation = %q %q %q", req.Name, req.Namespace, req.Operation)
	}
	if req.UserInfo.Username != "alice" || req.UserInfo.UID != "u-1" || len(req.UserInfo.Groups) != 2 || req.UserInfo.Extra["scope"][0] != "a" {
		t.Errorf("userInfo = %+v", req.UserInfo)
	}
	if req.DryRun == nil || *req.DryRun {
		t.Errorf("dryRun = %v, want false", req.DryRun)
	}
	var obj map[string]any
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		t.Fatal(err)
	}
	if obj["apiVersion"] != "v1" || obj["kind"] != "Pod" || obj["metadata"].(map[string]any)["name"] != "p" {
		t.Errorf("object = %v", obj)
	}
	if string(req.OldObject.Raw) != "" && string(req.OldObject.Raw) != "null" {
		t.Errorf("oldObject = %s, want null", req.OldObject.Raw)
	}
	var opts map[string]any
	if err := json.Unmarshal(req.Options.Raw, &opts); err != nil {
		t.Fatal(err)
	}
	if opts["kind"] != "CreateOptions" || opts["apiVersion"] != "meta.k8s.io/v1" {
		t.Errorf("options = %v", opts)
	}
	if got := a.Object.GetObjectKind().GroupVersionKind(); !got.Empty() {
		t.Errorf("the admitted object was modified: kind %v", got)
	}
}

func TestValidatingDenial(t *testing.T) {
	tests := []struct {
		name     string
		result   *metav1.Status
		wantCode int32
		wantMsg  string
	}{
		{"message and code", &metav1.Status{Code: 403, Message: "no pods on Sundays"}, 403,
			`admission webhook "deny.example.com" denied the request: no pods on Sundays`},
		{"no code is 400", &metav1.Status{Message: "bad"}, 400,
			`admission webhook "deny.example.com" denied the request: bad`},
		{"reason only", &metav1.Status{Reason: "Invalid"}, 400,
			`admission webhook "deny.example.com" denied the request: Invalid`},
		{"no status", nil, 400,
			`admission webhook "deny.example.com" denied the request without explanation`},
		{"code below 400 raised", &metav1.Status{Code: 200, Message: "x"}, 400,
			`admission webhook "deny.example.com" denied the request: x`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
				return &admissionv1.AdmissionResponse{Allowed: false, Result: tc.result}
			})
			v := NewValidating(Deps{Configs: validating(validatingFor("deny.example.com", srv))})
			err := v.Validate(context.Background(), podCreate("default", nil))
			if err == nil {
				t.Fatal("want a denial")
			}
			if code := statusCode(t, err); code != tc.wantCode {
				t.Errorf("code = %d, want %d", code, tc.wantCode)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("message = %q, want %q", err.Error(), tc.wantMsg)
			}
		})
	}
}

func TestFailurePolicy(t *testing.T) {
	slow := func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		time.Sleep(2 * time.Second)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	garbage := func(_ *http.Request, _ *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		return nil // the server writes nothing: an empty 200 body
	}
	wrongUID := func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{UID: "other", Allowed: true}
	}
	patching := func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(`[]`), PatchType: ptr(admissionv1.PatchTypeJSONPatch)}
	}
	tests := []struct {
		name   string
		handle reviewHandler
		policy admissionregistrationv1.FailurePolicyType
		// wantErr is a substring of the error; "" for none.
		wantErr string
	}{
		{"ignore timeout", slow, admissionregistrationv1.Ignore, ""},
		{"fail timeout", slow, admissionregistrationv1.Fail, "context deadline exceeded"},
		{"ignore garbage", garbage, admissionregistrationv1.Ignore, ""},
		{"fail garbage", garbage, admissionregistrationv1.Fail, `failed calling webhook "hook.example.com"`},
		{"fail wrong uid", wrongUID, admissionregistrationv1.Fail, `expected response.uid=`},
		{"ignore wrong uid", wrongUID, admissionregistrationv1.Ignore, ""},
		{"validating webhook may not patch", patching, admissionregistrationv1.Fail, "validating webhook may not return response.patch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWebhookServer(t, tc.handle)
			h := validatingFor("hook.example.com", srv)
			h.FailurePolicy = ptr(tc.policy)
			h.TimeoutSeconds = ptr(int32(1))
			v := NewValidating(Deps{Configs: validating(h)})
			start := time.Now()
			err := v.Validate(context.Background(), podCreate("default", nil))
			if elapsed := time.Since(start); elapsed > 1800*time.Millisecond {
				t.Errorf("Validate took %v with a 1s webhook timeout", elapsed)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if !apierrors.IsInternalError(err) || statusCode(t, err) != 500 {
				t.Errorf("err = %#v, want an internal error (500)", err)
			}
		})
	}
}

func TestValidatingWebhooksRunInParallel(t *testing.T) {
	slow := func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		time.Sleep(600 * time.Millisecond)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	a, b := newWebhookServer(t, slow), newWebhookServer(t, slow)
	v := NewValidating(Deps{Configs: validating(validatingFor("a.example.com", a), validatingFor("b.example.com", b))})
	start := time.Now()
	if err := v.Validate(context.Background(), podCreate("default", nil)); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 1100*time.Millisecond {
		t.Errorf("two 600ms webhooks took %v: not run in parallel", elapsed)
	}
	if a.calls() != 1 || b.calls() != 1 {
		t.Errorf("calls = %d, %d", a.calls(), b.calls())
	}
}

func TestDryRun(t *testing.T) {
	tests := []struct {
		sideEffects *admissionregistrationv1.SideEffectClass
		wantErr     string
	}{
		{ptr(admissionregistrationv1.SideEffectClassNone), ""},
		{ptr(admissionregistrationv1.SideEffectClassNoneOnDryRun), ""},
		{ptr(admissionregistrationv1.SideEffectClassSome), `admission webhook "dry.example.com" does not support dry run`},
		{ptr(admissionregistrationv1.SideEffectClassUnknown), `admission webhook "dry.example.com" does not support dry run`},
		{nil, "Webhook SideEffects is nil"},
	}
	for _, tc := range tests {
		name := "nil"
		if tc.sideEffects != nil {
			name = string(*tc.sideEffects)
		}
		t.Run(name, func(t *testing.T) {
			srv := newWebhookServer(t, allow)
			h := validatingFor("dry.example.com", srv)
			h.SideEffects = tc.sideEffects
			v := NewValidating(Deps{Configs: validating(h)})
			a := podCreate("default", nil)
			a.DryRun = true
			err := v.Validate(context.Background(), a)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				req := srv.last().Request
				if !*req.DryRun {
					t.Error("request.dryRun = false")
				}
				var opts metav1.CreateOptions
				_ = json.Unmarshal(req.Options.Raw, &opts)
				if len(opts.DryRun) != 1 || opts.DryRun[0] != "All" {
					t.Errorf("options.dryRun = %v", opts.DryRun)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if srv.calls() != 0 {
				t.Error("webhook called for a dry run it does not support")
			}
			if tc.sideEffects != nil && statusCode(t, err) != 400 {
				t.Errorf("code = %d, want 400", statusCode(t, err))
			}
		})
	}
}

func TestWarningsAreCollected(t *testing.T) {
	srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{Allowed: true, Warnings: []string{"image is old", "no limits"}}
	})
	v := NewValidating(Deps{Configs: validating(validatingFor("warn.example.com", srv))})
	a := podCreate("default", nil)
	if err := v.Validate(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if strings.Join(a.Warnings, "|") != "image is old|no limits" {
		t.Errorf("warnings = %q", a.Warnings)
	}
}

func TestV1beta1OnlyWebhook(t *testing.T) {
	srv := newWebhookServer(t, func(_ *http.Request, r *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		// v1beta1 answers are not checked for uid.
		return &admissionv1.AdmissionResponse{UID: "ignored", Allowed: false, Result: &metav1.Status{Message: "old"}}
	})
	h := validatingFor("old.example.com", srv)
	h.AdmissionReviewVersions = []string{"v1beta1"}
	v := NewValidating(Deps{Configs: validating(h)})
	err := v.Validate(context.Background(), podCreate("default", nil))
	if err == nil || err.Error() != `admission webhook "old.example.com" denied the request: old` {
		t.Fatalf("err = %v", err)
	}
	if got := srv.last().APIVersion; got != "admission.k8s.io/v1beta1" {
		t.Errorf("sent %s", got)
	}
}

func TestUnknownReviewVersionFollowsFailurePolicy(t *testing.T) {
	srv := newWebhookServer(t, allow)
	h := validatingFor("v2.example.com", srv)
	h.AdmissionReviewVersions = []string{"v2"}
	v := NewValidating(Deps{Configs: validating(h)})
	err := v.Validate(context.Background(), podCreate("default", nil))
	if err == nil || !strings.Contains(err.Error(), "does not accept known AdmissionReview versions") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeleteSendsOldObject(t *testing.T) {
	srv := newWebhookServer(t, allow)
	h := validatingFor("del.example.com", srv)
	h.Rules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Delete}
	v := NewValidating(Deps{Configs: validating(h)})
	a := podCreate("default", nil)
	a.Operation, a.OldObject, a.Object = admission.Delete, a.Object, nil
	if err := v.Validate(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	req := srv.last().Request
	if req.Operation != admissionv1.Delete || len(req.OldObject.Raw) == 0 || (len(req.Object.Raw) != 0 && string(req.Object.Raw) != "null") {
		t.Errorf("delete request: op %s object %s oldObject %s", req.Operation, req.Object.Raw, req.OldObject.Raw)
	}
	var opts map[string]any
	_ = json.Unmarshal(req.Options.Raw, &opts)
	if opts["kind"] != "DeleteOptions" {
		t.Errorf("options = %v", opts)
	}
}

func TestNamespaceObjectUsesItsOwnLabels(t *testing.T) {
	srv := newWebhookServer(t, allow)
	h := validatingFor("ns.example.com", srv)
	h.Rules[0].Resources = []string{"namespaces"}
	h.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	v := NewValidating(Deps{Configs: validating(h), Namespaces: fakeNamespaces{}})
	create := func(labels map[string]string) *admission.Attributes {
		return &admission.Attributes{
			Operation: admission.Create, Kind: corev1.SchemeGroupVersion.WithKind("Namespace"),
			Resource: corev1.SchemeGroupVersion.WithResource("namespaces"), Name: "team-a",
			Object: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: labels}},
		}
	}
	if err := v.Validate(context.Background(), create(map[string]string{"team": "b"})); err != nil {
		t.Fatal(err)
	}
	if srv.calls() != 0 {
		t.Fatal("called for a namespace whose labels do not match")
	}
	if err := v.Validate(context.Background(), create(map[string]string{"team": "a"})); err != nil {
		t.Fatal(err)
	}
	if srv.calls() != 1 {
		t.Fatal("not called for a namespace whose own labels match")
	}
}
