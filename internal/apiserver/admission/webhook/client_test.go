package webhook

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func TestServiceWebhookWithCABundle(t *testing.T) {
	var gotPath, gotTimeout string
	srv := newWebhookServer(t, func(r *http.Request, _ *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse {
		gotPath, gotTimeout = r.URL.Path, r.URL.Query().Get("timeout")
		return &admissionv1.AdmissionResponse{Allowed: true}
	})
	resolver := &fakeResolver{addr: srv.Listener.Addr().String()}
	_, ca := testCert()
	h := validatingFor("svc.example.com", srv)
	h.TimeoutSeconds = ptr(int32(7))
	h.ClientConfig = admissionregistrationv1.WebhookClientConfig{
		Service:  &admissionregistrationv1.ServiceReference{Namespace: "webhooks", Name: "hook", Path: ptr("/check")},
		CABundle: ca,
	}
	v := NewValidating(Deps{Configs: validating(h), Resolver: resolver})
	if err := v.Validate(context.Background(), podCreate("default", nil)); err != nil {
		t.Fatal(err)
	}
	if len(resolver.seen) != 1 || resolver.seen[0] != "webhooks/hook:443" {
		t.Errorf("resolved %v, want webhooks/hook:443 (port defaults to 443)", resolver.seen)
	}
	if srv.hosts[0] != "hook.webhooks.svc:443" {
		t.Errorf("Host = %q, want the service's DNS name", srv.hosts[0])
	}
	if gotPath != "/check" || gotTimeout != "7s" {
		t.Errorf("path %q timeout %q", gotPath, gotTimeout)
	}
}

func TestServiceWebhookVerifiesServerName(t *testing.T) {
	srv := newWebhookServer(t, allow)
	_, ca := testCert()
	h := validatingFor("svc.example.com", srv)
	// The certificate is not valid for other.webhooks.svc.
	h.ClientConfig = admissionregistrationv1.WebhookClientConfig{
		Service:  &admissionregistrationv1.ServiceReference{Namespace: "webhooks", Name: "other", Port: ptr(int32(8443))},
		CABundle: ca,
	}
	v := NewValidating(Deps{Configs: validating(h), Resolver: &fakeResolver{addr: srv.Listener.Addr().String()}})
	err := v.Validate(context.Background(), podCreate("default", nil))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
	if srv.calls() != 0 {
		t.Error("webhook reached despite a bad server name")
	}
}

func TestURLWebhookNeedsItsCA(t *testing.T) {
	srv := newWebhookServer(t, allow)
	h := validatingFor("url.example.com", srv)
	h.ClientConfig.CABundle = nil // system roots do not know the test CA
	v := NewValidating(Deps{Configs: validating(h)})
	err := v.Validate(context.Background(), podCreate("default", nil))
	if err == nil || !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want an internal error about the certificate", err)
	}
}

func TestCallerPostNon2xx(t *testing.T) {
	srv := newWebhookServer(t, func(*http.Request, *admissionv1.AdmissionReview) *admissionv1.AdmissionResponse { return nil })
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"go away","code":403}`))
	})
	_, ca := testCert()
	c := NewCaller(nil)
	var out map[string]any
	err := c.Post(context.Background(), ClientConfig{URL: ptr(srv.URL), CABundle: ca}, time.Second, map[string]string{"a": "b"}, &out)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "go away") {
		t.Fatalf("err = %v, want the webhook's 403 Status", err)
	}
}

func TestCallerRejectsBadCABundle(t *testing.T) {
	c := NewCaller(nil)
	err := c.Post(context.Background(), ClientConfig{URL: ptr("https://127.0.0.1:1"), CABundle: []byte("junk")}, time.Second, struct{}{}, &struct{}{})
	if err == nil || !strings.Contains(err.Error(), "no valid certificate authorities found") {
		t.Fatalf("err = %v", err)
	}
}
