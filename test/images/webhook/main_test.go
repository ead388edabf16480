package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func review(t *testing.T, uid, object string) admissionv1.AdmissionReview {
	t.Helper()
	in := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-" + uid),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: []byte(object)},
		},
	}
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	validate(rec, httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("response %+v is no AdmissionReview v1 response", out)
	}
	if out.Response.UID != in.Request.UID {
		t.Errorf("response uid %q, want the request's %q", out.Response.UID, in.Request.UID)
	}
	return out
}

func TestValidate(t *testing.T) {
	denied := review(t, "1", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"e2e.skiff.dev/deny":"true"}}}`)
	if denied.Response.Allowed {
		t.Error("labelled object allowed")
	}
	if r := denied.Response.Result; r == nil || r.Message != denyMessage || r.Code != http.StatusForbidden {
		t.Errorf("denial result %+v, want code 403 and %q", r, denyMessage)
	}
	for _, obj := range []string{
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`,
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":{"e2e.skiff.dev/deny":"false"}}}`,
	} {
		if out := review(t, "2", obj); !out.Response.Allowed {
			t.Errorf("%s denied: %+v", obj, out.Response.Result)
		}
	}
}

func TestValidateRejectsGarbage(t *testing.T) {
	rec := httptest.NewRecorder()
	validate(rec, httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader([]byte("not json"))))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("status %d, want 400", rec.Code)
	}
	rec = httptest.NewRecorder()
	validate(rec, httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("review without request: status %d, want 400", rec.Code)
	}
}
