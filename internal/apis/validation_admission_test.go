package apis

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// errorsByField renders errs as "field: type: detail" for comparison.
func errorsByField(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field+": "+string(e.Type)+": "+e.Detail)
	}
	return out
}

func wantErrors(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	got := errorsByField(errs)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func validWebhookConfiguration() *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "vwc"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "a.example.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "ns", Name: "svc", Port: ptr.To[int32](443)}},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{"CREATE"}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

// Upstream's SetDefaults_ValidatingWebhook, _Rule and _ServiceReference.
func TestWebhookDefaults(t *testing.T) {
	c := validWebhookConfiguration()
	c.Webhooks[0].ClientConfig.Service.Port = nil
	defaultAdmission(c)
	w := c.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.MatchPolicy != admissionregistrationv1.Equivalent ||
		*w.TimeoutSeconds != 10 || w.NamespaceSelector == nil || w.ObjectSelector == nil ||
		*w.Rules[0].Scope != admissionregistrationv1.AllScopes || *w.ClientConfig.Service.Port != 443 {
		t.Errorf("defaults not applied: %+v", w)
	}
	if errs := validateAdmission(c); len(errs) > 0 {
		t.Errorf("defaulted valid configuration refused: %v", errs)
	}
}

func TestWebhookClientConfig(t *testing.T) {
	c := validWebhookConfiguration()
	c.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("http://u@h/p?q=1#f")}
	wantErrors(t, validateAdmission(c),
		`webhooks[0].clientConfig.url: FieldValueInvalid: 'https' is the only allowed URL scheme; desired format: https://host[/path]`,
		`webhooks[0].clientConfig.url: FieldValueInvalid: user information is not permitted in the URL`,
		`webhooks[0].clientConfig.url: FieldValueInvalid: fragments are not permitted in the URL`,
		`webhooks[0].clientConfig.url: FieldValueInvalid: query parameters are not permitted in the URL`)

	// Upstream reports a missing namespace as a missing name (its helper
	// takes the two the other way round).
	c.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Name: "svc", Port: ptr.To[int32](443), Path: ptr.To("/a//b")}}
	wantErrors(t, validateAdmission(c),
		`webhooks[0].clientConfig.service.name: FieldValueRequired: `,
		`webhooks[0].clientConfig.service.path: FieldValueInvalid: segment[1] may not be empty`)
}

func TestWebhookNamesTimeoutsAndSideEffects(t *testing.T) {
	c := validWebhookConfiguration()
	c.Webhooks = append(c.Webhooks, c.Webhooks[0])
	c.Webhooks[1].TimeoutSeconds = ptr.To[int32](31)
	c.Webhooks[1].SideEffects = ptr.To(admissionregistrationv1.SideEffectClassSome)
	wantErrors(t, validateAdmission(c),
		`webhooks[1].sideEffects: FieldValueNotSupported: supported values: "None", "NoneOnDryRun"`,
		`webhooks[1].timeoutSeconds: FieldValueInvalid: the timeout value must be between 1 and 30 seconds`,
		`webhooks[1].name: FieldValueDuplicate: `)

	// An update keeps accepting what the stored object already had.
	old := c.DeepCopy()
	if errs := validateAdmissionUpdate(c, old); len(errorsByField(errs)) != 1 {
		t.Errorf("update should only refuse the timeout, got %v", errs)
	}
}

func TestMatchConditionsCompile(t *testing.T) {
	c := validWebhookConfiguration()
	c.Webhooks[0].MatchConditions = []admissionregistrationv1.MatchCondition{
		{Name: "ok", Expression: "request.userInfo.username != 'x' && authorizer.group('').resource('pods').check('get').allowed()"},
		{Name: "int", Expression: "1 + 1"},
		{Name: "params", Expression: "params.x"},
	}
	errs := validateAdmission(c)
	got := errorsByField(errs)
	if len(got) != 2 || !strings.Contains(got[0], "must evaluate to bool but got int") ||
		!strings.Contains(got[1], "undeclared reference to 'params'") {
		t.Errorf("match condition errors: %v", got)
	}
}

func validPolicy() *admissionregistrationv1.ValidatingAdmissionPolicy {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{"CREATE"},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}}},
			}}},
			Variables:   []admissionregistrationv1.Variable{{Name: "replicas", Expression: "object.spec.replicas"}, {Name: "big", Expression: "variables.replicas > 5"}},
			Validations: []admissionregistrationv1.Validation{{Expression: "!variables.big", MessageExpression: "'too many: ' + string(params.data.max)"}},
		},
	}
	defaultAdmission(p)
	return p
}

func TestPolicyVariablesAreTyped(t *testing.T) {
	p := validPolicy()
	if errs := validateAdmission(p); len(errs) > 0 {
		t.Fatalf("valid policy refused: %v", errs)
	}
	// variables.big is a bool: adding it to a string is a type error.
	p.Spec.Validations = append(p.Spec.Validations, admissionregistrationv1.Validation{Expression: "variables.big + 'x' == 'y'"})
	got := errorsByField(validateAdmission(p))
	if len(got) != 1 || !strings.Contains(got[0], "spec.validations[1].expression: FieldValueInvalid: compilation failed") {
		t.Errorf("errors: %v", got)
	}
}

func TestBindingValidationActions(t *testing.T) {
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "b"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        "p",
			ParamRef:          &admissionregistrationv1.ParamRef{Name: "x", Selector: &metav1.LabelSelector{}, ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)},
			ValidationActions: []admissionregistrationv1.ValidationAction{"Deny", "Warn", "Deny"},
		},
	}
	wantErrors(t, validateAdmission(b),
		`spec.paramRef.name: FieldValueForbidden: name and selector are mutually exclusive`,
		`spec.paramRef.selector: FieldValueForbidden: name and selector are mutually exclusive`,
		`spec.validationActions[2]: FieldValueDuplicate: `,
		`spec.validationActions: FieldValueInvalid: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)`)
}

func TestMutatingPolicyRefusesDelete(t *testing.T) {
	p := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "m"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{"DELETE"},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}},
			}}},
			Mutations: []admissionregistrationv1.Mutation{{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
				ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: "Object{metadata: Object.metadata{labels: {'a': 'b'}}}"}}},
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}
	defaultAdmission(p)
	wantErrors(t, validateAdmission(p),
		`spec.matchConstraints.resourceRules.operations: FieldValueNotSupported: supported values: "*", "CONNECT", "CREATE", "UPDATE"`)
}
