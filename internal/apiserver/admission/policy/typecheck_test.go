package policy

import (
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	configMapGVK  = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
)

func builtinTypes() TypeSource {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(deploymentGVK, meta.RESTScopeNamespace)
	m.Add(configMapGVK, meta.RESTScopeNamespace)
	return TypeSource{Mapper: m, Schemas: BuiltinSchemas()}
}

func rule(groups, versions, resources []string) admissionregistrationv1.NamedRuleWithOperations {
	return admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: groups, APIVersions: versions, Resources: resources},
	}}
}

func deploymentsRule() admissionregistrationv1.NamedRuleWithOperations {
	return rule([]string{"apps"}, []string{"v1"}, []string{"deployments"})
}

func typedPolicy(rules []admissionregistrationv1.NamedRuleWithOperations, validations ...admissionregistrationv1.Validation) *admissionregistrationv1.ValidatingAdmissionPolicy {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	p.Spec.MatchConstraints = &admissionregistrationv1.MatchResources{ResourceRules: rules}
	p.Spec.Validations = validations
	return p
}

func fieldRefs(ws []admissionregistrationv1.ExpressionWarning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.FieldRef)
	}
	return out
}

// A wrong field of a Deployment is reported against the expression that
// names it, in upstream's "<gvk>: <CEL issues>" form; correct expressions,
// message expressions included, are not.
func TestTypeCheckReportsWrongField(t *testing.T) {
	p := typedPolicy([]admissionregistrationv1.NamedRuleWithOperations{deploymentsRule()},
		admissionregistrationv1.Validation{Expression: "object.spec.replicas > 1", MessageExpression: "'replicas: ' + string(object.spec.replicas)"},
		admissionregistrationv1.Validation{Expression: "object.spec.replicaz > 1", MessageExpression: "object.metadata.name.size()"},
		admissionregistrationv1.Validation{Expression: "true", MessageExpression: "object.spec.template.spec.containerz[0].name"},
	)
	ws := TypeCheck(p, builtinTypes())
	if got, want := fieldRefs(ws), []string{"spec.validations[1].expression", "spec.validations[2].messageExpression"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("warnings for %v, want %v: %+v", got, want, ws)
	}
	w := ws[0].Warning
	if !strings.HasPrefix(w, "apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicaz'") || !strings.HasSuffix(w, "\n") {
		t.Errorf("warning %q", w)
	}
	if !strings.Contains(ws[1].Warning, "undefined field 'containerz'") {
		t.Errorf("warning %q", ws[1].Warning)
	}
}

// Rules with a wildcard group or version, and wildcard or subresource
// resources, name no concrete type: nothing is checked.
func TestTypeCheckSkipsWildcards(t *testing.T) {
	bad := admissionregistrationv1.Validation{Expression: "object.spec.replicaz > 1"}
	for _, r := range []admissionregistrationv1.NamedRuleWithOperations{
		rule([]string{"*"}, []string{"v1"}, []string{"deployments"}),
		rule([]string{"apps"}, []string{"*"}, []string{"deployments"}),
		rule([]string{"apps", "*"}, []string{"v1"}, []string{"deployments"}),
		rule([]string{"apps"}, []string{"v1"}, []string{"*"}),
		rule([]string{"apps"}, []string{"v1"}, []string{"deployments/status", "*/scale"}),
		rule([]string{"apps"}, []string{"v1"}, []string{"widgets"}), // unknown resource
	} {
		if ws := TypeCheck(typedPolicy([]admissionregistrationv1.NamedRuleWithOperations{r}, bad), builtinTypes()); ws != nil {
			t.Errorf("rule %+v: got warnings %+v", r.Rule, ws)
		}
	}
	// A wildcard entry of resources is skipped, the explicit ones kept.
	r := rule([]string{"apps"}, []string{"v1"}, []string{"*", "deployments"})
	if ws := TypeCheck(typedPolicy([]admissionregistrationv1.NamedRuleWithOperations{r}, bad), builtinTypes()); len(ws) != 1 {
		t.Errorf("got warnings %+v, want one", ws)
	}
}

// An expression is checked against every kind the rules name; the warning
// lists the kinds it fails for, sorted, joined by newlines.
func TestTypeCheckSeveralKinds(t *testing.T) {
	rules := []admissionregistrationv1.NamedRuleWithOperations{
		deploymentsRule(), rule([]string{""}, []string{"v1"}, []string{"configmaps"}),
	}
	ws := TypeCheck(typedPolicy(rules,
		admissionregistrationv1.Validation{Expression: "object.metadata.name != ''"},
		admissionregistrationv1.Validation{Expression: "object.spec.replicas > 1"},
		admissionregistrationv1.Validation{Expression: "has(object.foo)"},
	), builtinTypes())
	if got, want := fieldRefs(ws), []string{"spec.validations[1].expression", "spec.validations[2].expression"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("warnings for %v, want %v: %+v", got, want, ws)
	}
	if !strings.HasPrefix(ws[0].Warning, "/v1, Kind=ConfigMap: ERROR:") || strings.Contains(ws[0].Warning, "Deployment") {
		t.Errorf("only ConfigMaps have no spec: %q", ws[0].Warning)
	}
	parts := strings.Split(ws[1].Warning, "\n\n")
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "/v1, Kind=ConfigMap: ") || !strings.HasPrefix(parts[1], "apps/v1, Kind=Deployment: ") {
		t.Errorf("warning %q", ws[1].Warning)
	}
}

// Variables are typed by their expressions, params by paramKind's schema.
func TestTypeCheckVariablesAndParams(t *testing.T) {
	p := typedPolicy([]admissionregistrationv1.NamedRuleWithOperations{deploymentsRule()},
		admissionregistrationv1.Validation{Expression: "variables.replicas > 1"},
		admissionregistrationv1.Validation{Expression: "variables.replicas.startsWith('x')"},
		admissionregistrationv1.Validation{Expression: "variables.broken == 1"}, // dyn: not reported
		admissionregistrationv1.Validation{Expression: "params.data['max'] == string(object.spec.replicas)"},
		admissionregistrationv1.Validation{Expression: "params.spec.replicas == 1"},
		admissionregistrationv1.Validation{Expression: "authorizer.requestResource.check('update').allowed()"},
	)
	p.Spec.Variables = []admissionregistrationv1.Variable{
		{Name: "replicas", Expression: "object.spec.replicas"},
		{Name: "broken", Expression: "object.nope"},
	}
	p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}
	ws := TypeCheck(p, builtinTypes())
	if got, want := fieldRefs(ws), []string{"spec.validations[1].expression", "spec.validations[4].expression"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("warnings for %v, want %v: %+v", got, want, ws)
	}
	if !strings.Contains(ws[0].Warning, "found no matching overload for 'startsWith' applied to 'int") {
		t.Errorf("warning %q", ws[0].Warning)
	}
	if !strings.Contains(ws[1].Warning, "undefined field 'spec'") {
		t.Errorf("warning %q", ws[1].Warning)
	}

	// Without paramKind, params is not declared at all.
	p.Spec.ParamKind = nil
	p.Spec.Validations = p.Spec.Validations[3:4]
	ws = TypeCheck(p, builtinTypes())
	if len(ws) != 1 || !strings.Contains(ws[0].Warning, "undeclared reference to 'params'") {
		t.Errorf("warnings %+v", ws)
	}
}

// countingMapper maps n resources of group "x" to one kind each and
// counts resets.
type countingMapper struct {
	meta.RESTMapper
	resets int
}

func (m *countingMapper) Reset() { m.resets++ }

// At most ten kinds are collected from one rule; a mapper miss resets the
// mapper once per policy.
func TestTypesToCheckLimitAndReset(t *testing.T) {
	dm := meta.NewDefaultRESTMapper(nil)
	var resources []string
	for i := range 12 {
		dm.Add(schema.GroupVersionKind{Group: "x", Version: "v1", Kind: fmt.Sprintf("K%02d", i)}, meta.RESTScopeRoot)
		resources = append(resources, fmt.Sprintf("k%02ds", i))
	}
	m := &countingMapper{RESTMapper: dm}
	p := typedPolicy([]admissionregistrationv1.NamedRuleWithOperations{
		rule([]string{"x"}, []string{"v1"}, append([]string{"missing", "gone"}, resources...)),
		rule([]string{""}, []string{"v1"}, []string{"pods"}), // not reached
	})
	got := typesToCheck(p, m)
	if len(got) != maxTypesToCheck || got[0].Kind != "K00" || got[9].Kind != "K09" {
		t.Errorf("kinds %v", got)
	}
	if m.resets != 1 {
		t.Errorf("mapper reset %d times, want once", m.resets)
	}
}
