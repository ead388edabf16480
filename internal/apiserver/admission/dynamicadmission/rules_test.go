package dynamicadmission

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

func TestRuleMatching(t *testing.T) {
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	nodes := corev1.SchemeGroupVersion.WithResource("nodes")
	namespaces := corev1.SchemeGroupVersion.WithResource("namespaces")
	rule := func(ops []admissionregistrationv1.OperationType, groups, versions, resources []string, scope admissionregistrationv1.ScopeType) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: groups, APIVersions: versions, Resources: resources, Scope: &scope}}
	}
	create := []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	all := []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}
	every := []string{"*"}
	tests := []struct {
		name        string
		rule        admissionregistrationv1.RuleWithOperations
		op          admission.Operation
		resource    schema.GroupVersionResource
		subresource string
		namespace   string
		want        bool
	}{
		{"exact", rule(create, []string{""}, []string{"v1"}, []string{"pods"}, "*"), admission.Create, pods, "", "ns", true},
		{"other operation", rule(create, []string{""}, []string{"v1"}, []string{"pods"}, "*"), admission.Update, pods, "", "ns", false},
		{"operation *", rule(all, []string{""}, []string{"v1"}, []string{"pods"}, "*"), admission.Delete, pods, "", "ns", true},
		{"other group", rule(create, []string{"apps"}, every, []string{"pods"}, "*"), admission.Create, pods, "", "ns", false},
		{"group *", rule(create, every, []string{"v1"}, []string{"deployments"}, "*"), admission.Create, deployments, "", "ns", true},
		{"other version", rule(create, []string{""}, []string{"v2"}, []string{"pods"}, "*"), admission.Create, pods, "", "ns", false},
		{"resource * skips subresources", rule(create, every, every, []string{"*"}, "*"), admission.Create, pods, "status", "ns", false},
		{"resource */* takes subresources", rule(create, every, every, []string{"*/*"}, "*"), admission.Create, pods, "status", "ns", true},
		{"pods/status", rule(create, every, every, []string{"pods/status"}, "*"), admission.Create, pods, "status", "ns", true},
		{"pods/status is not pods", rule(create, every, every, []string{"pods/status"}, "*"), admission.Create, pods, "", "ns", false},
		{"pods is not pods/status", rule(create, every, every, []string{"pods"}, "*"), admission.Create, pods, "status", "ns", false},
		{"pods/*", rule(create, every, every, []string{"pods/*"}, "*"), admission.Create, pods, "binding", "ns", true},
		{"*/status", rule(create, every, every, []string{"*/status"}, "*"), admission.Create, nodes, "status", "", true},
		{"Namespaced scope, namespaced object", rule(create, every, every, every, admissionregistrationv1.NamespacedScope), admission.Create, pods, "", "ns", true},
		{"Namespaced scope, cluster object", rule(create, every, every, every, admissionregistrationv1.NamespacedScope), admission.Create, nodes, "", "", false},
		{"Namespaced scope, namespace object", rule(all, every, every, every, admissionregistrationv1.NamespacedScope), admission.Update, namespaces, "", "", false},
		{"Cluster scope, namespace object", rule(all, every, every, every, admissionregistrationv1.ClusterScope), admission.Update, namespaces, "", "", true},
		{"Cluster scope, namespaced object", rule(create, every, every, every, admissionregistrationv1.ClusterScope), admission.Create, pods, "", "ns", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &admission.Attributes{Operation: tc.op, Resource: tc.resource, Subresource: tc.subresource, Namespace: tc.namespace, Name: "x"}
			if got := RuleMatches(tc.rule, a); got != tc.want {
				t.Errorf("RuleMatches = %v, want %v", got, tc.want)
			}
		})
	}
}
