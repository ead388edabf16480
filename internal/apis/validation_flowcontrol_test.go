package apis

import (
	"strings"
	"testing"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func validFlowSchema() *flowcontrolv1.FlowSchema {
	return &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "team"},
			MatchingPrecedence:         500,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects: []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindServiceAccount,
					ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: "team", Name: "*"}}},
				ResourceRules: []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""},
					Resources: []string{"pods"}, Namespaces: []string{"team"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"/metrics", "/debug/*"}}},
			}},
		},
	}
}

func validPriorityLevel() *flowcontrolv1.PriorityLevelConfiguration {
	shares := int32(10)
	return &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "team"},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: &shares,
				LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
					Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 64, HandSize: 8, QueueLengthLimit: 50}},
			},
		},
	}
}

func TestValidateFlowControl(t *testing.T) {
	fs := func(mutate func(*flowcontrolv1.FlowSchema)) runtime.Object {
		o := validFlowSchema()
		mutate(o)
		return o
	}
	pl := func(mutate func(*flowcontrolv1.PriorityLevelConfiguration)) runtime.Object {
		o := validPriorityLevel()
		mutate(o)
		return o
	}
	rule := func(f *flowcontrolv1.FlowSchema) *flowcontrolv1.PolicyRulesWithSubjects { return &f.Spec.Rules[0] }
	tests := []struct {
		name string
		obj  runtime.Object
		want []string // "type field: detail" fragments, in order
	}{
		{"valid schema", fs(func(*flowcontrolv1.FlowSchema) {}), nil},
		{"valid level", pl(func(*flowcontrolv1.PriorityLevelConfiguration) {}), nil},
		{"precedence 1 not exempt", fs(func(f *flowcontrolv1.FlowSchema) { f.Spec.MatchingPrecedence = 1 }),
			[]string{"spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1"}},
		{"precedence too high", fs(func(f *flowcontrolv1.FlowSchema) { f.Spec.MatchingPrecedence = 10001 }),
			[]string{"spec.matchingPrecedence: Invalid value: 10001: must not be greater than 10000"}},
		{"unknown distinguisher", fs(func(f *flowcontrolv1.FlowSchema) { f.Spec.DistinguisherMethod.Type = "ByPod" }),
			[]string{"spec.distinguisherMethod.type: Unsupported value"}},
		{"no level", fs(func(f *flowcontrolv1.FlowSchema) { f.Spec.PriorityLevelConfiguration.Name = "" }),
			[]string{"spec.priorityLevelConfiguration.name: Required value: must reference a priority level"}},
		{"no subjects", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).Subjects = nil }),
			[]string{"spec.rules[0].subjects: Required value: subjects must contain at least one value"}},
		{"user subject without user", fs(func(f *flowcontrolv1.FlowSchema) {
			rule(f).Subjects = []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser}}
		}), []string{"spec.rules[0].subjects[0].user: Required value: user is required when subject kind is 'User'"}},
		{"unknown subject kind", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).Subjects[0].Kind = "Robot" }),
			[]string{"spec.rules[0].subjects[0].kind: Unsupported value: \"Robot\""}},
		{"service account without namespace", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).Subjects[0].ServiceAccount.Namespace = "" }),
			[]string{"spec.rules[0].subjects[0].serviceAccount.namespace: Required value: must specify namespace for service account"}},
		{"wildcard verb with others", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).ResourceRules[0].Verbs = []string{"*", "get"} }),
			[]string{"spec.rules[0].resourceRules[0].verbs: Invalid value"}},
		{"unknown verb", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).ResourceRules[0].Verbs = []string{"explode"} }),
			[]string{"spec.rules[0].resourceRules[0].verbs: Unsupported value"}},
		{"namespaced rule without namespaces", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).ResourceRules[0].Namespaces = nil }),
			[]string{"spec.rules[0].resourceRules[0].namespaces: Required value: resource rules that are not cluster scoped must supply at least one namespace"}},
		{"bad namespace", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).ResourceRules[0].Namespaces = []string{"Bad_NS"} }),
			[]string{"spec.rules[0].resourceRules[0].namespaces[0]: Invalid value: \"Bad_NS\": each member of this list must be '*' or a DNS-1123 label; "}},
		{"url wildcard in the middle", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).NonResourceRules[0].NonResourceURLs = []string{"/a/*/b"} }),
			[]string{"spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: \"/a/*/b\": wildcard can only do suffix matching"}},
		{"url without slash", fs(func(f *flowcontrolv1.FlowSchema) { rule(f).NonResourceRules[0].NonResourceURLs = []string{"metrics"} }),
			[]string{"spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: \"metrics\": must start with slash"}},
		{"mandatory schema changed", fs(func(f *flowcontrolv1.FlowSchema) { f.Name = "catch-all" }),
			[]string{"spec: Invalid value", "spec of 'catch-all' must equal the fixed value"}},
		{"limited level named exempt", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) { p.Name = "exempt" }),
			[]string{"spec.type: Invalid value: \"Limited\": must be 'Exempt' if and only if `name` is 'exempt'", "spec of 'exempt' except the 'spec.exempt' field must equal the fixed value"}},
		// Expectations from upstream v1.37.2's answers (declarative union checks).
		{"limited without limited", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) { p.Spec.Limited = nil }),
			[]string{"spec.limited: Required value"}},
		{"unknown type", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) { p.Spec.Type = "Sometimes" }),
			[]string{`[spec.type: Unsupported value: "Sometimes": supported values: "Exempt", "Limited", spec.limited: Forbidden]`}},
		{"no type", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) { p.Spec.Type = "" }),
			[]string{"[spec.limited: Forbidden, spec.type: Required value]"}},
		{"no limit response type", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) { p.Spec.Limited.LimitResponse.Type = "" }),
			[]string{"[spec.limited.limitResponse.queuing: Forbidden, spec.limited.limitResponse.type: Required value]"}},
		{"lendable over 100", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) {
			v := int32(101)
			p.Spec.Limited.LendablePercent = &v
		}),
			[]string{"spec.limited.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive"}},
		{"queuing missing", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) { p.Spec.Limited.LimitResponse.Queuing = nil }),
			[]string{"spec.limited.limitResponse.queuing: Required value"}},
		{"hand larger than queues", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) { p.Spec.Limited.LimitResponse.Queuing.HandSize = 65 }),
			[]string{"spec.limited.limitResponse.queuing.handSize: Invalid value: 65: should not be greater than queues (64)"}},
		{"too much entropy", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) {
			p.Spec.Limited.LimitResponse.Queuing.Queues, p.Spec.Limited.LimitResponse.Queuing.HandSize = 1000000, 10
		}), []string{"spec.limited.limitResponse.queuing.handSize: Invalid value: 10: required entropy bits of deckSize 1000000 and handSize 10 should not be greater than 60"}},
		{"zero queue length", pl(func(p *flowcontrolv1.PriorityLevelConfiguration) {
			p.Spec.Limited.LimitResponse.Queuing.QueueLengthLimit = -1
		}),
			[]string{"spec.limited.limitResponse.queuing.queueLengthLimit: Invalid value: -1: must be positive"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := Validate(tc.obj)
			if len(tc.want) == 0 {
				if len(errs) > 0 {
					t.Fatalf("valid object refused: %v", errs)
				}
				return
			}
			all := errs.ToAggregate()
			if all == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(all.Error(), w) {
					t.Errorf("errors %q lack %q", all.Error(), w)
				}
			}
		})
	}
}
