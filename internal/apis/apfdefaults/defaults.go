// Package apfdefaults holds upstream's default API Priority and Fairness
// configuration: the mandatory and suggested FlowSchemas and
// PriorityLevelConfigurations every server keeps. It is a leaf package so
// that both validation (internal/apis) and the dispatcher
// (internal/apiserver/flowcontrol) can use it.
package apfdefaults

import (
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Well-known names of the mandatory objects.
const (
	Exempt   = flowcontrolv1.PriorityLevelConfigurationNameExempt // "exempt"
	CatchAll = flowcontrolv1.PriorityLevelConfigurationNameCatchAll
)

// Users and groups the default schemas name.
const (
	groupMasters         = "system:masters"
	groupNodes           = "system:nodes"
	groupAuthenticated   = "system:authenticated"
	groupUnauthenticated = "system:unauthenticated"
	groupServiceAccounts = "system:serviceaccounts"
	userControllerMgr    = "system:kube-controller-manager"
	userScheduler        = "system:kube-scheduler"
)

// MandatoryPriorityLevels returns the priority levels every server keeps
// as defined here, whatever users write.
func MandatoryPriorityLevels() []*flowcontrolv1.PriorityLevelConfiguration {
	return []*flowcontrolv1.PriorityLevelConfiguration{
		LimitedLevel(CatchAll, 5, 0, nil),
		{
			ObjectMeta: bootstrapMeta(Exempt),
			Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
				Type:   flowcontrolv1.PriorityLevelEnablementExempt,
				Exempt: &flowcontrolv1.ExemptPriorityLevelConfiguration{NominalConcurrencyShares: i32(0), LendablePercent: i32(0)},
			},
		},
	}
}

// SuggestedPriorityLevels returns the default levels a user may change
// (by setting the autoupdate annotation to "false").
func SuggestedPriorityLevels() []*flowcontrolv1.PriorityLevelConfiguration {
	q := func(queues, hand int32) *flowcontrolv1.QueuingConfiguration {
		return &flowcontrolv1.QueuingConfiguration{Queues: queues, HandSize: hand, QueueLengthLimit: 50}
	}
	return []*flowcontrolv1.PriorityLevelConfiguration{
		LimitedLevel("system", 30, 33, q(64, 6)),
		LimitedLevel("node-high", 40, 25, q(64, 6)),
		LimitedLevel("leader-election", 10, 0, q(16, 4)),
		LimitedLevel("workload-high", 40, 50, q(128, 6)),
		LimitedLevel("workload-low", 100, 90, q(128, 6)),
		LimitedLevel("global-default", 20, 50, q(128, 6)),
	}
}

// MandatoryFlowSchemas returns the schemas every server keeps as defined.
func MandatoryFlowSchemas() []*flowcontrolv1.FlowSchema {
	return []*flowcontrolv1.FlowSchema{
		FlowSchema("exempt", Exempt, 1, "", Everything(Groups(groupMasters))),
		FlowSchema(CatchAll, CatchAll, 10000, flowcontrolv1.FlowDistinguisherMethodByUserType,
			Everything(Groups(groupUnauthenticated, groupAuthenticated))),
	}
}

// SuggestedFlowSchemas returns the default schemas a user may change.
func SuggestedFlowSchemas() []*flowcontrolv1.FlowSchema {
	byUser, byNS := flowcontrolv1.FlowDistinguisherMethodByUserType, flowcontrolv1.FlowDistinguisherMethodByNamespaceType
	allNS := []string{flowcontrolv1.NamespaceEvery}
	kubeSystemSAs := flowcontrolv1.Subject{
		Kind:           flowcontrolv1.SubjectKindServiceAccount,
		ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: metav1.NamespaceSystem, Name: flowcontrolv1.NameAll},
	}
	return []*flowcontrolv1.FlowSchema{
		FlowSchema("system-nodes", "system", 500, byUser, Everything(Groups(groupNodes))),
		FlowSchema("system-node-high", "node-high", 400, byUser, flowcontrolv1.PolicyRulesWithSubjects{
			Subjects: Groups(groupNodes),
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{
				{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"nodes", "nodes/status"}, Namespaces: allNS, ClusterScope: true},
				{Verbs: []string{"*"}, APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Namespaces: allNS},
			},
		}),
		FlowSchema("probes", Exempt, 2, "", flowcontrolv1.PolicyRulesWithSubjects{
			Subjects:         Groups(groupUnauthenticated, groupAuthenticated),
			NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz", "/readyz", "/livez"}}},
		}),
		FlowSchema("system-leader-election", "leader-election", 100, byUser, flowcontrolv1.PolicyRulesWithSubjects{
			Subjects: append(Users(userControllerMgr, userScheduler), kubeSystemSAs),
			ResourceRules: []flowcontrolv1.ResourcePolicyRule{
				{Verbs: []string{"get", "create", "update"}, APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Namespaces: allNS},
			},
		}),
		FlowSchema("kube-controller-manager", "workload-high", 800, byNS, Everything(Users(userControllerMgr))),
		FlowSchema("kube-scheduler", "workload-high", 800, byNS, Everything(Users(userScheduler))),
		FlowSchema("kube-system-service-accounts", "workload-high", 900, byNS, Everything([]flowcontrolv1.Subject{kubeSystemSAs})),
		FlowSchema("service-accounts", "workload-low", 9000, byUser, Everything(Groups(groupServiceAccounts))),
		FlowSchema("global-default", "global-default", 9900, byUser, Everything(Groups(groupUnauthenticated, groupAuthenticated))),
	}
}

func i32(v int32) *int32 { return &v }

func bootstrapMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Annotations: map[string]string{flowcontrolv1.AutoUpdateAnnotationKey: "true"}}
}

// LimitedLevel builds a limited priority level with the autoupdate annotation;
// a nil queuing configuration rejects what exceeds its seats.
func LimitedLevel(name string, shares, lendable int32, queuing *flowcontrolv1.QueuingConfiguration) *flowcontrolv1.PriorityLevelConfiguration {
	resp := flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject}
	if queuing != nil {
		resp = flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue, Queuing: queuing}
	}
	return &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: bootstrapMeta(name),
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: i32(shares), LendablePercent: i32(lendable), LimitResponse: resp,
			},
		},
	}
}

// FlowSchema builds a flow schema with the autoupdate annotation.
func FlowSchema(name, level string, precedence int32, method flowcontrolv1.FlowDistinguisherMethodType, rules flowcontrolv1.PolicyRulesWithSubjects) *flowcontrolv1.FlowSchema {
	fs := &flowcontrolv1.FlowSchema{
		ObjectMeta: bootstrapMeta(name),
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level},
			MatchingPrecedence:         precedence,
			Rules:                      []flowcontrolv1.PolicyRulesWithSubjects{rules},
		},
	}
	if method != "" {
		fs.Spec.DistinguisherMethod = &flowcontrolv1.FlowDistinguisherMethod{Type: method}
	}
	return fs
}

// Everything is a rule set matching every request of subjects.
func Everything(subjects []flowcontrolv1.Subject) flowcontrolv1.PolicyRulesWithSubjects {
	return flowcontrolv1.PolicyRulesWithSubjects{
		Subjects: subjects,
		ResourceRules: []flowcontrolv1.ResourcePolicyRule{{
			Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"},
			Namespaces: []string{flowcontrolv1.NamespaceEvery}, ClusterScope: true,
		}},
		NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
	}
}

// Groups are group subjects.
func Groups(names ...string) []flowcontrolv1.Subject {
	out := make([]flowcontrolv1.Subject, len(names))
	for i, n := range names {
		out[i] = flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: n}}
	}
	return out
}

// Users are user subjects.
func Users(names ...string) []flowcontrolv1.Subject {
	out := make([]flowcontrolv1.Subject, len(names))
	for i, n := range names {
		out[i] = flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: n}}
	}
	return out
}
