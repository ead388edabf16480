package policy

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apiserver/admission/admissiontest"
)

// widgetCreate is shared with the other admission plugin's tests.
var widgetCreate = admissiontest.WidgetCreate

// widgetRules matches creates of example.com widgets in versions.
func widgetRules(policy admissionregistrationv1.MatchPolicyType, versions ...string) *admissionregistrationv1.MatchResources {
	return &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{},
		ObjectSelector:    &metav1.LabelSelector{},
		MatchPolicy:       &policy,
		ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"example.com"}, APIVersions: versions, Resources: []string{"widgets"},
				},
			},
		}},
	}
}

func TestPolicyMatchPolicy(t *testing.T) {
	// Denies what it sees unless it sees the v1 form of a v2 request.
	v1View := admissionregistrationv1.Validation{
		Expression: "object.apiVersion == 'example.com/v1' && object.spec.size == 3 && " +
			"request.kind.version == 'v1' && request.resource.version == 'v1' && " +
			"request.requestKind.version == 'v2' && request.requestResource.version == 'v2'",
	}
	deny := admissionregistrationv1.Validation{Expression: "false"}
	tests := []struct {
		name     string
		mr       *admissionregistrationv1.MatchResources
		v        admissionregistrationv1.Validation
		noEquiv  bool
		wantDeny bool
	}{
		{"exact refuses the other version", widgetRules(admissionregistrationv1.Exact, "v1"), deny, false, false},
		{"equivalent matches the other version", widgetRules(admissionregistrationv1.Equivalent, "v1"), deny, false, true},
		{"CEL sees the matched version", widgetRules(admissionregistrationv1.Equivalent, "v1"), v1View, false, false},
		{"wildcards match the requested version", widgetRules(admissionregistrationv1.Exact, "*"), deny, false, true},
		{"equivalent without other versions", widgetRules(admissionregistrationv1.Equivalent, "v1"), deny, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePolicies{}
			f.vaps = append(f.vaps, newVAP("widgets", tc.mr, tc.v))
			f.vapbs = append(f.vapbs, newVAPBinding("widgets-binding", "widgets", admissionregistrationv1.Deny))
			a := widgetCreate("v2", 3)
			if tc.noEquiv {
				a.Equivalents = nil
			}
			err := NewValidating(f.deps()).Validate(context.Background(), a)
			if denied := err != nil; denied != tc.wantDeny {
				t.Fatalf("err = %v, want denied %v", err, tc.wantDeny)
			}
		})
	}
}

// Exclude rules honour matchPolicy too, as upstream.
func TestPolicyExcludeEquivalent(t *testing.T) {
	for _, policy := range []admissionregistrationv1.MatchPolicyType{admissionregistrationv1.Exact, admissionregistrationv1.Equivalent} {
		t.Run(string(policy), func(t *testing.T) {
			mr := widgetRules(policy, "*")
			mr.ExcludeResourceRules = widgetRules(policy, "v1").ResourceRules
			f := &fakePolicies{}
			f.vaps = append(f.vaps, newVAP("widgets", mr, admissionregistrationv1.Validation{Expression: "false"}))
			f.vapbs = append(f.vapbs, newVAPBinding("widgets-binding", "widgets", admissionregistrationv1.Deny))
			err := NewValidating(f.deps()).Validate(context.Background(), widgetCreate("v2", 3))
			if excluded := err == nil; excluded != (policy == admissionregistrationv1.Equivalent) {
				t.Errorf("err = %v; want the v2 request excluded only under Equivalent", err)
			}
		})
	}
}

// A mutation of the converted object is converted back to the request's
// version.
func TestMutatingPolicyEquivalent(t *testing.T) {
	f := &fakePolicies{}
	p := newMAP("widgets", jsonPatch(`[JSONPatch{op: "replace", path: "/spec/size", value: object.spec.size + 2}]`))
	p.Spec.MatchConstraints = widgetRules(admissionregistrationv1.Equivalent, "v1")
	f.maps = append(f.maps, p)
	f.mapbs = append(f.mapbs, newMAPBinding("widgets-binding", "widgets"))
	a := widgetCreate("v2", 3)
	obj := a.Object.(*unstructured.Unstructured)
	if err := NewMutating(f.deps()).Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	n, _, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if a.Object != obj || obj.GetAPIVersion() != "example.com/v2" || n != 5 {
		t.Errorf("object = %v, want example.com/v2 with spec.replicas 5, changed in place", obj.Object)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "spec", "size"); found {
		t.Errorf("v1 field left in the v2 object: %v", obj.Object)
	}
}

// A conversion failure is a configuration error, decided by failurePolicy.
func TestPolicyConversionFailure(t *testing.T) {
	f := &fakePolicies{}
	f.vaps = append(f.vaps, newVAP("widgets", widgetRules(admissionregistrationv1.Equivalent, "v1"), admissionregistrationv1.Validation{Expression: "true"}))
	f.vapbs = append(f.vapbs, newVAPBinding("widgets-binding", "widgets", admissionregistrationv1.Deny))
	a := widgetCreate("v2", 3)
	a.Object.(*unstructured.Unstructured).SetAPIVersion("example.com/v3") // the fake refuses it
	err := NewValidating(f.deps()).Validate(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "failed to convert object") {
		t.Errorf("err = %v, want a conversion failure", err)
	}
	f.vaps[0].Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	if err := NewValidating(f.deps()).Validate(context.Background(), a); err != nil {
		t.Errorf("failurePolicy Ignore: %v", err)
	}
}
