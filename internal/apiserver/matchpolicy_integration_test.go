package apiserver_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// reviewRecorder is a webhook that allows everything and keeps the
// requests it was sent.
type reviewRecorder struct {
	mu       sync.Mutex
	requests []*admissionv1.AdmissionRequest
}

func (r *reviewRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(req.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.requests = append(r.requests, review.Request)
	r.mu.Unlock()
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

// named returns the requests for the object called name.
func (r *reviewRecorder) named(name string) []*admissionv1.AdmissionRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*admissionv1.AdmissionRequest
	for _, req := range r.requests {
		if req.Name == name {
			out = append(out, req)
		}
	}
	return out
}

// widgetsV1V2CRD serves widgets in v1 (stored) and v2, with conversion
// None.
func widgetsV1V2CRD() *apiextensionsv1.CustomResourceDefinition {
	crd := widgetCRD()
	crd.Spec.Versions[1].Name = "v2"
	return crd
}

func v1WidgetRule() admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.com"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}},
	}
}

// A webhook registered for v1 of a CRD with matchPolicy Equivalent sees a
// create made through v2 in its v1 form, with requestKind and
// requestResource naming v2; with Exact it is not called. A
// ValidatingAdmissionPolicy matching v1 with Equivalent refuses a v2
// create.
func TestMatchPolicyEquivalent(t *testing.T) {
	s := testserver.StartWith(t, testserver.Options{AccessControl: true})
	ctx := context.Background()
	createEstablished(t, s, widgetsV1V2CRD())
	widgetsV2 := schema.GroupVersionResource{Group: "example.com", Version: "v2", Resource: "widgets"}
	dyn := dynamic.NewForConfigOrDie(s.Config)

	rec := &reviewRecorder{}
	hook := httptest.NewTLSServer(rec)
	t.Cleanup(hook.Close)
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hook.Certificate().Raw})
	webhook := func(name, path string, policy admissionregistrationv1.MatchPolicyType) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(hook.URL + path), CABundle: caBundle},
			Rules:                   []admissionregistrationv1.RuleWithOperations{v1WidgetRule()},
			MatchPolicy:             ptr.To(policy),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			webhook("equivalent.example.com", "/equivalent", admissionregistrationv1.Equivalent),
			webhook("exact.example.com", "/exact", admissionregistrationv1.Exact),
		},
	}
	if _, err := s.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Creates at v1 reach both webhooks once the configuration is live.
	var n int
	testserver.Eventually(t, "the webhooks to be called", func() bool {
		n++
		name := fmt.Sprintf("probe-%d", n)
		if _, err := dyn.Resource(widgetsV1).Namespace("default").Create(ctx, widget(name, "red", 1), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return len(rec.named(name)) == 2
	})

	w := widget("through-v2", "blue", 3)
	w.SetAPIVersion("example.com/v2")
	if _, err := dyn.Resource(widgetsV2).Namespace("default").Create(ctx, w, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reqs := rec.named("through-v2")
	if len(reqs) != 1 {
		t.Fatalf("the v2 create reached %d webhooks, want 1 (only the Equivalent one)", len(reqs))
	}
	req := reqs[0]
	v1Kind := metav1.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	v2Kind := metav1.GroupVersionKind{Group: "example.com", Version: "v2", Kind: "Widget"}
	if req.Kind != v1Kind || req.Resource != (metav1.GroupVersionResource(widgetsV1)) {
		t.Errorf("kind %v resource %v, want the v1 form", req.Kind, req.Resource)
	}
	if req.RequestKind == nil || *req.RequestKind != v2Kind || req.RequestResource == nil || *req.RequestResource != metav1.GroupVersionResource(widgetsV2) {
		t.Errorf("requestKind %v requestResource %v, want v2", req.RequestKind, req.RequestResource)
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(req.Object.Raw); err != nil {
		t.Fatal(err)
	}
	if obj.GetAPIVersion() != "example.com/v1" || obj.GetName() != "through-v2" {
		t.Errorf("object sent as %s %q, want example.com/v1", obj.GetAPIVersion(), obj.GetName())
	}
	if err := s.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, cfg.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// A policy for v1 with Equivalent refuses the v2 create, and sees the
	// object and request as the v1 form.
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-blue"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				MatchPolicy:   ptr.To(admissionregistrationv1.Equivalent),
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: v1WidgetRule()}},
			},
			Validations: []admissionregistrationv1.Validation{{
				Expression:        `object.spec.color != "blue"`,
				MessageExpression: `"blue seen as " + object.apiVersion + " for " + request.requestKind.version`,
			}},
		},
	}
	if _, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-blue"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "no-blue",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	if _, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var err error
	n = 0
	testserver.Eventually(t, "the policy to refuse a v2 create", func() bool {
		n++
		w := widget(fmt.Sprintf("blue-%d", n), "blue", 1)
		w.SetAPIVersion("example.com/v2")
		_, err = dyn.Resource(widgetsV2).Namespace("default").Create(ctx, w, metav1.CreateOptions{})
		return err != nil
	})
	if !strings.Contains(err.Error(), "blue seen as example.com/v1 for v2") {
		t.Errorf("refusal %q, want the policy's message about the v1 form", err)
	}
}

// Built-ins served in several versions are equivalent too: a policy for
// autoscaling/v1 HorizontalPodAutoscalers sees an autoscaling/v2 create
// converted to v1.
func TestMatchPolicyEquivalentBuiltin(t *testing.T) {
	s := testserver.StartWith(t, testserver.Options{AccessControl: true})
	ctx := context.Background()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "cpu-target"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				MatchPolicy: ptr.To(admissionregistrationv1.Equivalent),
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"autoscaling"}, APIVersions: []string{"v1"}, Resources: []string{"horizontalpodautoscalers"}},
				}}},
			},
			// targetCPUUtilizationPercentage exists in v1 only.
			Validations: []admissionregistrationv1.Validation{{
				Expression:        `object.spec.targetCPUUtilizationPercentage <= 80`,
				MessageExpression: `"v1 target " + string(object.spec.targetCPUUtilizationPercentage) + " via " + request.requestResource.version`,
			}},
		},
	}
	if _, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cpu-target"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "cpu-target",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	if _, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpa := func(name string, target int32) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
				MinReplicas:    ptr.To(int32(1)), MaxReplicas: 3,
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(target)},
				}}},
			},
		}
	}
	hpas := s.Client.AutoscalingV2().HorizontalPodAutoscalers("default")
	var err error
	n := 0
	testserver.Eventually(t, "the policy to refuse a v2 create", func() bool {
		n++
		_, err = hpas.Create(ctx, hpa(fmt.Sprintf("busy-%d", n), 90), metav1.CreateOptions{})
		return err != nil
	})
	if !strings.Contains(err.Error(), "v1 target 90 via v2") {
		t.Errorf("refusal %q, want the policy's message about the v1 form", err)
	}
	if _, err := hpas.Create(ctx, hpa("calm", 50), metav1.CreateOptions{}); err != nil {
		t.Errorf("a v2 create within the v1 limit: %v", err)
	}
}
