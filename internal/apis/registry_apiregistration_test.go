package apis

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/utils/ptr"
)

// client-go's scheme lacks the aggregator's kinds; the server registers
// them in its own (internal/apiserver/codec.go).
func init() {
	if err := apiregistrationv1.AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}

func TestLocalAPIServices(t *testing.T) {
	got := LocalAPIServices([]schema.GroupVersion{{Version: "v1"}, {Group: "autoscaling", Version: "v2"}, {Group: "metrics.k8s.io", Version: "v1beta1"}})
	if len(got) != 2 {
		t.Fatalf("got %d APIServices, want 2 (no priority known for metrics.k8s.io)", len(got))
	}
	core, hpa := got[0], got[1]
	if core.Name != "v1." || core.Spec.GroupPriorityMinimum != 18000 || core.Spec.VersionPriority != 1 || core.Spec.Service != nil {
		t.Errorf("core: %+v", core)
	}
	if hpa.Name != "v2.autoscaling" || hpa.Spec.GroupPriorityMinimum != 17500 || hpa.Spec.VersionPriority != 30 {
		t.Errorf("autoscaling/v2: %+v", hpa)
	}
	if core.Labels[AutomanagedLabel] != "onstart" || apiServiceAvailability(core) != "True" || core.Status.Conditions[0].Reason != "Local" {
		t.Errorf("core metadata/status: %+v %+v", core.Labels, core.Status)
	}
	for _, s := range got {
		if errs := validateAPIService(s); len(errs) > 0 {
			t.Errorf("%s: %v", s.Name, errs)
		}
		if msgs := APIServiceNameValidator(s)(s.Name, false); len(msgs) > 0 {
			t.Errorf("%s: name refused: %v", s.Name, msgs)
		}
	}
}

func TestAPIServiceRules(t *testing.T) {
	s := &apiregistrationv1.APIService{Spec: apiregistrationv1.APIServiceSpec{
		Group: "metrics.k8s.io", Version: "v1beta1", GroupPriorityMinimum: 100, VersionPriority: 100,
		Service:  &apiregistrationv1.ServiceReference{Namespace: "kube-system", Name: "metrics-server"},
		CABundle: []byte("x"), InsecureSkipTLSVerify: true,
	}}
	s.Name = "v1beta1.metrics.k8s.io"
	defaultAPIService(s)
	if *s.Spec.Service.Port != 443 || len(s.Status.Conditions) != 0 {
		t.Errorf("defaults: port %v, conditions %v", *s.Spec.Service.Port, s.Status.Conditions)
	}
	wantErrors(t, validateAPIService(s), `spec.insecureSkipTLSVerify: FieldValueInvalid: may not be true if caBundle is present`)
	if got := apiServiceAvailability(s); got != "Unknown" {
		t.Errorf("availability without a condition: %q", got)
	}
	if msgs := APIServiceNameValidator(s)("v1.metrics.k8s.io", false); len(msgs) != 1 || msgs[0] != "must be `spec.version+\".\"+spec.group`: \"v1beta1.metrics.k8s.io\"" {
		t.Errorf("name mismatch: %v", msgs)
	}

	s.Spec.Service.Port = ptr.To[int32](0)
	s.Spec.CABundle = nil
	s.Status.Conditions = []apiregistrationv1.APIServiceCondition{{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionFalse, Reason: "ServiceNotFound"}}
	wantErrors(t, validateAPIService(s), `spec.service.port: FieldValueInvalid: port is not valid: must be between 1 and 65535, inclusive`)
	if got := apiServiceAvailability(s); got != "False (ServiceNotFound)" {
		t.Errorf("availability: %q", got)
	}
}
