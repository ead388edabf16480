package policy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// statusOf asserts err is an API status error and returns it.
func statusOf(t *testing.T, err error) *apierrors.StatusError {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("want a StatusError, got %T: %v", err, err)
	}
	return se
}

// The documentation's first example: at most 5 replicas.
func TestReplicaLimitDeniesAsUpstream(t *testing.T) {
	f := &fakePolicies{}
	f.vaps = append(f.vaps, newVAP("demo-policy.example.com", deploymentRules(),
		admissionregistrationv1.Validation{Expression: "object.spec.replicas <= 5"}))
	f.vapbs = append(f.vapbs, newVAPBinding("demo-binding-test.example.com", "demo-policy.example.com", admissionregistrationv1.Deny))
	v := NewValidating(f.deps())

	if err := v.Validate(context.Background(), deploymentCreate(deployment("default", "nginx", 3))); err != nil {
		t.Fatalf("3 replicas: %v", err)
	}
	err := v.Validate(context.Background(), deploymentCreate(deployment("default", "nginx", 6)))
	se := statusOf(t, err)
	const msg = "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5"
	if want := `deployments.apps "nginx" is forbidden: ` + msg; se.ErrStatus.Message != want {
		t.Errorf("message\n got %q\nwant %q", se.ErrStatus.Message, want)
	}
	if se.ErrStatus.Code != http.StatusUnprocessableEntity || se.ErrStatus.Reason != metav1.StatusReasonInvalid {
		t.Errorf("code %d reason %s, want 422 Invalid", se.ErrStatus.Code, se.ErrStatus.Reason)
	}
	d := se.ErrStatus.Details
	if d == nil || d.Name != "nginx" || d.Group != "apps" || d.Kind != "deployments" || len(d.Causes) != 1 || d.Causes[0].Message != msg {
		t.Errorf("details %+v", d)
	}
}

func replicaLimit(ns, name string, max int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"maxReplicas": max}}
	u.SetGroupVersionKind(replicaLimitGVK)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// The documentation's parameter example, with messageExpression.
func paramPolicy(action admissionregistrationv1.ParameterNotFoundActionType) *fakePolicies {
	f := &fakePolicies{}
	p := newVAP("replicalimit-policy.example.com", deploymentRules(), admissionregistrationv1.Validation{
		Expression:        "object.spec.replicas <= params.maxReplicas",
		MessageExpression: "'object.spec.replicas must be no greater than ' + string(params.maxReplicas)",
		Reason:            ptr.To(metav1.StatusReasonInvalid),
	})
	p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "rules.example.com/v1", Kind: "ReplicaLimit"}
	f.vaps = append(f.vaps, p)
	b := newVAPBinding("replicalimit-binding-test.example.com", p.Name, admissionregistrationv1.Deny)
	b.Spec.ParamRef = &admissionregistrationv1.ParamRef{
		Name: "replica-limit-test.example.com", Namespace: "default", ParameterNotFoundAction: &action,
	}
	f.vapbs = append(f.vapbs, b)
	return f
}

func TestParamsAndMessageExpression(t *testing.T) {
	f := paramPolicy(admissionregistrationv1.DenyAction)
	f.paramObjs = append(f.paramObjs, replicaLimit("default", "replica-limit-test.example.com", 3))
	v := NewValidating(f.deps())

	if err := v.Validate(context.Background(), deploymentCreate(deployment("default", "web", 3))); err != nil {
		t.Fatalf("3 replicas: %v", err)
	}
	se := statusOf(t, v.Validate(context.Background(), deploymentCreate(deployment("default", "web", 4))))
	want := "ValidatingAdmissionPolicy 'replicalimit-policy.example.com' with binding 'replicalimit-binding-test.example.com' denied request: object.spec.replicas must be no greater than 3"
	if !strings.HasSuffix(se.ErrStatus.Message, want) {
		t.Errorf("message %q, want suffix %q", se.ErrStatus.Message, want)
	}
}

func TestParamNotFoundAction(t *testing.T) {
	ctx := context.Background()
	deny := NewValidating(paramPolicy(admissionregistrationv1.DenyAction).deps())
	se := statusOf(t, deny.Validate(ctx, deploymentCreate(deployment("default", "web", 1))))
	want := "ValidatingAdmissionPolicy 'replicalimit-policy.example.com' with binding 'replicalimit-binding-test.example.com' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
	if !strings.HasSuffix(se.ErrStatus.Message, want) || se.ErrStatus.Code != http.StatusUnprocessableEntity {
		t.Errorf("Deny: %d %q", se.ErrStatus.Code, se.ErrStatus.Message)
	}

	allow := NewValidating(paramPolicy(admissionregistrationv1.AllowAction).deps())
	if err := allow.Validate(ctx, deploymentCreate(deployment("default", "web", 100))); err != nil {
		t.Errorf("Allow: %v", err)
	}
}

func TestParamSelectorEvaluatesEachParam(t *testing.T) {
	f := paramPolicy(admissionregistrationv1.DenyAction)
	f.vapbs[0].Spec.ParamRef = &admissionregistrationv1.ParamRef{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
	}
	loose, strict := replicaLimit("default", "loose", 10), replicaLimit("default", "strict", 2)
	loose.SetLabels(map[string]string{"tier": "web"})
	strict.SetLabels(map[string]string{"tier": "web"})
	f.paramObjs = append(f.paramObjs, loose, strict, replicaLimit("other", "elsewhere", 0))
	v := NewValidating(f.deps())
	se := statusOf(t, v.Validate(context.Background(), deploymentCreate(deployment("default", "web", 5))))
	if !strings.HasSuffix(se.ErrStatus.Message, "must be no greater than 2") {
		t.Errorf("message %q", se.ErrStatus.Message)
	}
}

func TestValidationActions(t *testing.T) {
	for _, tc := range []struct {
		actions   []admissionregistrationv1.ValidationAction
		wantErr   bool
		wantWarns int
	}{
		{actions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}, wantWarns: 1},
		{actions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit}},
		{actions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn, admissionregistrationv1.Deny}, wantErr: true, wantWarns: 1},
	} {
		f := &fakePolicies{}
		f.vaps = append(f.vaps, newVAP("max", deploymentRules(), admissionregistrationv1.Validation{
			Expression: "object.spec.replicas <= 5", Message: "too many replicas",
		}))
		f.vapbs = append(f.vapbs, newVAPBinding("max-binding", "max", tc.actions...))
		a := deploymentCreate(deployment("default", "web", 6))
		err := NewValidating(f.deps()).Validate(context.Background(), a)
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: err %v", tc.actions, err)
		}
		if len(a.Warnings) != tc.wantWarns {
			t.Fatalf("%v: warnings %q", tc.actions, a.Warnings)
		}
		if tc.wantWarns > 0 {
			if want := "Validation failed for ValidatingAdmissionPolicy 'max' with binding 'max-binding': too many replicas"; a.Warnings[0] != want {
				t.Errorf("warning %q, want %q", a.Warnings[0], want)
			}
		}
	}
}

func TestReasonSetsCode(t *testing.T) {
	f := &fakePolicies{}
	f.vaps = append(f.vaps, newVAP("p", deploymentRules(), admissionregistrationv1.Validation{
		Expression: "false", Reason: ptr.To(metav1.StatusReasonForbidden),
		// A multi-line message expression result is not used.
		MessageExpression: "'line one\\nline two'", Message: "fallback message",
	}))
	f.vapbs = append(f.vapbs, newVAPBinding("b", "p", admissionregistrationv1.Deny))
	se := statusOf(t, NewValidating(f.deps()).Validate(context.Background(), deploymentCreate(deployment("default", "web", 1))))
	if se.ErrStatus.Code != http.StatusForbidden || se.ErrStatus.Reason != metav1.StatusReasonForbidden {
		t.Errorf("code %d reason %s", se.ErrStatus.Code, se.ErrStatus.Reason)
	}
	if !strings.HasSuffix(se.ErrStatus.Message, "denied request: fallback message") {
		t.Errorf("message %q", se.ErrStatus.Message)
	}
}

func TestNamespaceSelectorAndNamespaceObject(t *testing.T) {
	f := &fakePolicies{nss: []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "test", Labels: map[string]string{"environment": "test"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"environment": "prod"}}},
	}}
	mr := deploymentRules()
	mr.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"environment": "test"}}
	f.vaps = append(f.vaps, newVAP("test-only", mr, admissionregistrationv1.Validation{
		Expression:        "object.spec.replicas <= 1",
		MessageExpression: "'in ' + namespaceObject.metadata.name + ' at most 1 replica'",
	}))
	f.vapbs = append(f.vapbs, newVAPBinding("b", "test-only", admissionregistrationv1.Deny))
	v := NewValidating(f.deps())
	ctx := context.Background()
	if err := v.Validate(ctx, deploymentCreate(deployment("prod", "web", 3))); err != nil {
		t.Errorf("prod is not selected: %v", err)
	}
	se := statusOf(t, v.Validate(ctx, deploymentCreate(deployment("test", "web", 3))))
	if !strings.HasSuffix(se.ErrStatus.Message, "denied request: in test at most 1 replica") {
		t.Errorf("message %q", se.ErrStatus.Message)
	}
	// A namespace that does not exist: the lookup's NotFound is a
	// configuration error of the policy.
	se = statusOf(t, v.Validate(ctx, deploymentCreate(deployment("missing", "web", 3))))
	if want := `ValidatingAdmissionPolicy 'test-only' denied request: failed to configure policy: namespaces "missing" not found`; !strings.HasSuffix(se.ErrStatus.Message, want) {
		t.Errorf("message %q, want suffix %q", se.ErrStatus.Message, want)
	}
}

func TestObjectSelectorAndExcludeRules(t *testing.T) {
	f := &fakePolicies{}
	mr := deploymentRules()
	mr.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	mr.ExcludeResourceRules = []admissionregistrationv1.NamedRuleWithOperations{{
		ResourceNames: []string{"exempt"},
		RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*"}},
		},
	}}
	f.vaps = append(f.vaps, newVAP("p", mr, admissionregistrationv1.Validation{Expression: "false"}))
	f.vapbs = append(f.vapbs, newVAPBinding("b", "p", admissionregistrationv1.Deny))
	v := NewValidating(f.deps())
	ctx := context.Background()
	if err := v.Validate(ctx, deploymentCreate(deployment("default", "other", 1))); err != nil {
		t.Errorf("label app=other is not selected: %v", err)
	}
	exempt := deployment("default", "exempt", 1)
	exempt.Labels["app"] = "web"
	if err := v.Validate(ctx, deploymentCreate(exempt)); err != nil {
		t.Errorf("excluded by name: %v", err)
	}
	if err := v.Validate(ctx, deploymentCreate(deployment("default", "web", 1))); err == nil {
		t.Error("app=web should be denied")
	}
}

func TestMatchConditions(t *testing.T) {
	f := &fakePolicies{}
	p := newVAP("p", deploymentRules(), admissionregistrationv1.Validation{Expression: "object.spec.replicas <= 5"})
	p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{
		{Name: "not-admin", Expression: "request.userInfo.username != 'admin'"},
		{Name: "web-only", Expression: "object.metadata.name.startsWith('web')"},
	}
	f.vaps = append(f.vaps, p)
	f.vapbs = append(f.vapbs, newVAPBinding("b", "p", admissionregistrationv1.Deny))
	v := NewValidating(f.deps())
	ctx := context.Background()

	if err := v.Validate(ctx, deploymentCreate(deployment("default", "api", 9))); err != nil {
		t.Errorf("name condition false: %v", err)
	}
	a := deploymentCreate(deployment("default", "web", 9))
	a.User.Name = "admin"
	if err := v.Validate(ctx, a); err != nil {
		t.Errorf("user condition false: %v", err)
	}
	if err := v.Validate(ctx, deploymentCreate(deployment("default", "web", 9))); err == nil {
		t.Error("both conditions true: want denial")
	}
}

func TestVariables(t *testing.T) {
	f := &fakePolicies{}
	p := newVAP("p", deploymentRules(), admissionregistrationv1.Validation{
		Expression:        "variables.replicas <= variables.limit",
		MessageExpression: "'replicas ' + string(variables.replicas) + ' over ' + string(variables.limit)",
	})
	p.Spec.Variables = []admissionregistrationv1.Variable{
		{Name: "replicas", Expression: "object.spec.replicas"},
		{Name: "limit", Expression: "'environment' in object.metadata.labels && object.metadata.labels.environment == 'prod' ? 10 : variables.base"},
		{Name: "base", Expression: "2"},
	}
	f.vaps = append(f.vaps, p)
	f.vapbs = append(f.vapbs, newVAPBinding("b", "p", admissionregistrationv1.Deny))
	v := NewValidating(f.deps())
	se := statusOf(t, v.Validate(context.Background(), deploymentCreate(deployment("default", "web", 3))))
	// `limit` refers to `base`, declared after it: a compile error of the
	// variable, reported when the validation evaluates it.
	if !strings.Contains(se.ErrStatus.Message, `composited variable "limit" fails to compile`) {
		t.Errorf("message %q", se.ErrStatus.Message)
	}

	p.Spec.Variables = []admissionregistrationv1.Variable{
		{Name: "replicas", Expression: "object.spec.replicas"},
		{Name: "base", Expression: "2"},
		{Name: "limit", Expression: "'environment' in object.metadata.labels && object.metadata.labels.environment == 'prod' ? 10 : variables.base"},
	}
	p.ResourceVersion = "2"
	se = statusOf(t, v.Validate(context.Background(), deploymentCreate(deployment("default", "web", 3))))
	if !strings.HasSuffix(se.ErrStatus.Message, "denied request: replicas 3 over 2") {
		t.Errorf("message %q", se.ErrStatus.Message)
	}
	prod := deployment("default", "web", 3)
	prod.Labels["environment"] = "prod"
	if err := v.Validate(context.Background(), deploymentCreate(prod)); err != nil {
		t.Errorf("prod limit 10: %v", err)
	}
}

func TestFailurePolicyOnRuntimeError(t *testing.T) {
	for _, fp := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
		f := &fakePolicies{}
		p := newVAP("p", deploymentRules(), admissionregistrationv1.Validation{Expression: "object.spec.missing > 1"})
		p.Spec.FailurePolicy = &fp
		f.vaps = append(f.vaps, p)
		f.vapbs = append(f.vapbs, newVAPBinding("b", "p", admissionregistrationv1.Deny))
		err := NewValidating(f.deps()).Validate(context.Background(), deploymentCreate(deployment("default", "web", 1)))
		if fp == admissionregistrationv1.Ignore {
			if err != nil {
				t.Errorf("Ignore: %v", err)
			}
			continue
		}
		se := statusOf(t, err)
		if want := "denied request: expression 'object.spec.missing > 1' resulted in error: no such key: missing"; !strings.HasSuffix(se.ErrStatus.Message, want) {
			t.Errorf("Fail: message %q, want suffix %q", se.ErrStatus.Message, want)
		}
	}
}

func TestCompileErrorAndCache(t *testing.T) {
	f := &fakePolicies{}
	p := newVAP("p", deploymentRules(), admissionregistrationv1.Validation{Expression: "object.spec.replicas <"})
	f.vaps = append(f.vaps, p)
	f.vapbs = append(f.vapbs, newVAPBinding("b", "p", admissionregistrationv1.Deny))
	v := NewValidating(f.deps()).(*Validating)
	se := statusOf(t, v.Validate(context.Background(), deploymentCreate(deployment("default", "web", 1))))
	if !strings.Contains(se.ErrStatus.Message, "denied request: compilation error: compilation failed: ERROR: <input>:1:") {
		t.Errorf("message %q", se.ErrStatus.Message)
	}
	first := v.cache.get(p.UID, "1", func() *compiledValidating { t.Fatal("recompiled at the same resourceVersion"); return nil })

	p.ResourceVersion = "2"
	p.Spec.Validations[0].Expression = "object.spec.replicas < 5"
	if err := v.Validate(context.Background(), deploymentCreate(deployment("default", "web", 1))); err != nil {
		t.Fatalf("after fix: %v", err)
	}
	if second := v.cache.get(p.UID, "2", nil); second == first {
		t.Error("new resourceVersion did not recompile")
	}
}

func TestPolicyObjectsAreExempt(t *testing.T) {
	f := &fakePolicies{}
	mr := deploymentRules()
	mr.ResourceRules[0].Rule = admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*"}}
	f.vaps = append(f.vaps, newVAP("deny-all", mr, admissionregistrationv1.Validation{Expression: "false"}))
	f.vapbs = append(f.vapbs, newVAPBinding("b", "deny-all", admissionregistrationv1.Deny))
	binding := newVAPBinding("fix", "deny-all", admissionregistrationv1.Deny)
	a := createAttrs(binding, admissionregistrationv1.SchemeGroupVersion.WithKind("ValidatingAdmissionPolicyBinding"),
		admissionregistrationv1.SchemeGroupVersion.WithResource("validatingadmissionpolicybindings"))
	a.Object = binding
	if err := NewValidating(f.deps()).Validate(context.Background(), a); err != nil {
		t.Errorf("policy objects must be exempt: %v", err)
	}
}

type fakeAuthorizer struct{ allowUser string }

func (f fakeAuthorizer) Authorize(_ context.Context, a authz.Attributes) (authz.Decision, string, error) {
	if a.User != nil && a.User.Name == f.allowUser && a.Verb == "scale" && a.Resource == "deployments" && a.Namespace == "default" {
		return authz.Allow, "", nil
	}
	return authz.NoOpinion, "", nil
}

func TestAuthorizerVariable(t *testing.T) {
	f := &fakePolicies{}
	f.vaps = append(f.vaps, newVAP("scalers-only", deploymentRules(), admissionregistrationv1.Validation{
		Expression: "object.spec.replicas <= 1 || authorizer.requestResource.check('scale').allowed()",
		Message:    "only scalers may run more than one replica",
	}))
	f.vapbs = append(f.vapbs, newVAPBinding("b", "scalers-only", admissionregistrationv1.Deny))
	d := f.deps()
	d.Authorizer = fakeAuthorizer{allowUser: "bob"}
	v := NewValidating(d)
	ctx := context.Background()
	if err := v.Validate(ctx, deploymentCreate(deployment("default", "web", 3))); err == nil {
		t.Error("alice may not scale: want denial")
	}
	a := deploymentCreate(deployment("default", "web", 3))
	a.User.Name = "bob"
	if err := v.Validate(ctx, a); err != nil {
		t.Errorf("bob may scale: %v", err)
	}
}

func TestConcurrentAdmission(t *testing.T) {
	f := &fakePolicies{}
	for _, name := range []string{"p1", "p2", "p3", "p4"} {
		p := newVAP(name, deploymentRules(), admissionregistrationv1.Validation{Expression: "variables.r <= 5"})
		p.Spec.Variables = []admissionregistrationv1.Variable{{Name: "r", Expression: "object.spec.replicas"}}
		f.vaps = append(f.vaps, p)
		f.vapbs = append(f.vapbs, newVAPBinding(name+"-b", name, admissionregistrationv1.Deny))
		f.maps = append(f.maps, newMAP(name, applyConfig(`Object{metadata: Object.metadata{labels: {"seen": "yes"}}}`)))
		f.mapbs = append(f.mapbs, newMAPBinding(name+"-b", name))
	}
	v, m := NewValidating(f.deps()), NewMutating(f.deps())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := v.Validate(context.Background(), deploymentCreate(deployment("default", "web", int32(i))))
			if (err != nil) != (i > 5) {
				t.Errorf("replicas %d: %v", i, err)
			}
			p := pod("web", nil, "web")
			if err := m.Admit(context.Background(), podCreate(p)); err != nil || p.Labels["seen"] != "yes" {
				t.Errorf("mutation: %v %v", err, p.Labels)
			}
		}()
	}
	wg.Wait()
}

func TestMatchConditionErrors(t *testing.T) {
	for _, fp := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
		f := &fakePolicies{}
		p := newVAP("p", deploymentRules(), admissionregistrationv1.Validation{Expression: "false"})
		p.Spec.FailurePolicy = &fp
		p.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "broken", Expression: "object.spec.nope == 1"}}
		f.vaps = append(f.vaps, p)
		f.vapbs = append(f.vapbs, newVAPBinding("b", "p", admissionregistrationv1.Deny))
		err := NewValidating(f.deps()).Validate(context.Background(), deploymentCreate(deployment("default", "web", 1)))
		if fp == admissionregistrationv1.Ignore {
			if err != nil {
				t.Errorf("Ignore: a failing match condition skips the policy: %v", err)
			}
			continue
		}
		se := statusOf(t, err)
		if want := "with binding 'b' denied request: expression 'object.spec.nope == 1' resulted in error: no such key: nope"; !strings.HasSuffix(se.ErrStatus.Message, want) {
			t.Errorf("Fail: message %q, want suffix %q", se.ErrStatus.Message, want)
		}
	}
}
