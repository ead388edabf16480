package webhook

import (
	"context"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skiff-dev/skiff/internal/apiserver/admission/admissiontest"
)

// widgetCreate is shared with the other admission plugin's tests.
var widgetCreate = admissiontest.WidgetCreate

// widgetHook is a webhook for example.com widgets in the given versions.
func widgetHook(srv *recorder, policy admissionregistrationv1.MatchPolicyType, versions ...string) admissionregistrationv1.ValidatingWebhook {
	h := validatingFor("widgets.example.com", srv)
	h.Rules[0].APIGroups, h.Rules[0].APIVersions, h.Rules[0].Resources = []string{"example.com"}, versions, []string{"widgets"}
	h.MatchPolicy = &policy
	return h
}

func TestMatchPolicy(t *testing.T) {
	tests := []struct {
		name     string
		policy   admissionregistrationv1.MatchPolicyType
		versions []string
		noEquiv  bool // the server knows no other versions
		called   bool
		kind     string // the version the webhook sees
	}{
		{"exact refuses the other version", admissionregistrationv1.Exact, []string{"v1"}, false, false, ""},
		{"equivalent matches the other version", admissionregistrationv1.Equivalent, []string{"v1"}, false, true, "v1"},
		{"equivalent prefers the requested version", admissionregistrationv1.Equivalent, []string{"v1", "v2"}, false, true, "v2"},
		{"wildcard matches the requested version", admissionregistrationv1.Equivalent, []string{"*"}, false, true, "v2"},
		{"wildcard under exact", admissionregistrationv1.Exact, []string{"*"}, false, true, "v2"},
		{"equivalent without other versions", admissionregistrationv1.Equivalent, []string{"v1"}, true, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newWebhookServer(t, allow)
			v := NewValidating(Deps{Configs: validating(widgetHook(srv, tc.policy, tc.versions...))})
			a := widgetCreate("v2", 3)
			if tc.noEquiv {
				a.Equivalents = nil
			}
			if err := v.Validate(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			if called := srv.calls() == 1; called != tc.called {
				t.Fatalf("called = %v, want %v", called, tc.called)
			}
			if !tc.called {
				return
			}
			req := srv.last().Request
			wantKind := metav1.GroupVersionKind{Group: "example.com", Version: tc.kind, Kind: "Widget"}
			wantRes := metav1.GroupVersionResource{Group: "example.com", Version: tc.kind, Resource: "widgets"}
			if req.Kind != wantKind || req.Resource != wantRes {
				t.Errorf("kind %v resource %v, want %v %v", req.Kind, req.Resource, wantKind, wantRes)
			}
			if req.RequestKind == nil || req.RequestKind.Version != "v2" || req.RequestResource == nil || req.RequestResource.Version != "v2" {
				t.Errorf("requestKind %v requestResource %v, want v2", req.RequestKind, req.RequestResource)
			}
			var obj unstructured.Unstructured
			if err := obj.UnmarshalJSON(req.Object.Raw); err != nil {
				t.Fatal(err)
			}
			field := map[string]string{"v1": "size", "v2": "replicas"}[tc.kind]
			if n, _, _ := unstructured.NestedInt64(obj.Object, "spec", field); obj.GetAPIVersion() != "example.com/"+tc.kind || n != 3 {
				t.Errorf("object sent = %v, want example.com/%s with spec.%s 3", obj.Object, tc.kind, field)
			}
		})
	}
}

// A webhook's patch to the converted object reaches the request's object,
// converted back into the requested version.
func TestEquivalentPatchIsConvertedBack(t *testing.T) {
	srv := newWebhookServer(t, func(_ *http.Request, r *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		if r.Request.Kind.Version != "v1" {
			return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Message: "sent " + r.Request.Kind.Version}}
		}
		return patchResponse(`[{"op":"replace","path":"/spec/size","value":5}]`)
	})
	v := widgetHook(srv, admissionregistrationv1.Equivalent, "v1")
	h := mutatingFor(v.Name, srv)
	h.Rules, h.MatchPolicy = v.Rules, v.MatchPolicy
	m := NewMutating(Deps{Configs: mutating(h)})
	a := widgetCreate("v2", 3)
	obj := a.Object.(*unstructured.Unstructured)
	if err := m.Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if a.Object != obj {
		t.Error("the object was replaced instead of changed in place")
	}
	n, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if obj.GetAPIVersion() != "example.com/v2" || n != 5 {
		t.Errorf("object = %v, want example.com/v2 with spec.replicas 5", obj.Object)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "size"); found {
		t.Errorf("v1 field left in the v2 object: %v", obj.Object)
	}
}

// Match conditions see the request as the webhook would: the object in the
// matched version, requestKind the requested one.
func TestEquivalentMatchConditionsSeeConvertedObject(t *testing.T) {
	srv := newWebhookServer(t, allow)
	h := widgetHook(srv, admissionregistrationv1.Equivalent, "v1")
	h.MatchConditions = []admissionregistrationv1.MatchCondition{{
		Name:       "converted",
		Expression: "object.apiVersion == 'example.com/v1' && object.spec.size == 3 && request.kind.version == 'v1' && request.requestKind.version == 'v2'",
	}}
	v := NewValidating(Deps{Configs: validating(h)})
	if err := v.Validate(context.Background(), widgetCreate("v2", 3)); err != nil {
		t.Fatal(err)
	}
	if srv.calls() != 1 {
		t.Errorf("calls = %d, want 1: the match condition saw another form", srv.calls())
	}
}
