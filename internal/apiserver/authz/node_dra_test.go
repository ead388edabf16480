package authz

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestNodeReadsOnlyItsPodsResourceClaims(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu", Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: "node-a", ResourceClaims: []corev1.PodResourceClaim{
			{Name: "direct", ResourceClaimName: ptr.To("shared-claim")},
			{Name: "templated", ResourceClaimTemplateName: ptr.To("tmpl")},
		}},
		Status: corev1.PodStatus{ResourceClaimStatuses: []corev1.PodResourceClaimStatus{
			{Name: "templated", ResourceClaimName: ptr.To("gpu-templated-x7k2")},
		}},
	}
	rules := []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{"resource.k8s.io"}, Resources: []string{"resourceclaims"}}}
	n := NewNode(&fakeNodeSource{pods: []*corev1.Pod{pod}}, rules)
	claim := func(verb, name string) Attributes {
		return Attributes{ResourceRequest: true, Verb: verb, APIGroup: "resource.k8s.io", Resource: "resourceclaims", Namespace: "ns", Name: name}
	}
	tests := []struct {
		name string
		node string
		a    Attributes
		want Decision
	}{
		{"claim named in the pod spec", "node-a", claim("get", "shared-claim"), Allow},
		{"claim generated from a template", "node-a", claim("get", "gpu-templated-x7k2"), Allow},
		{"claim of no pod on the node", "node-a", claim("get", "other"), NoOpinion},
		{"another node", "node-b", claim("get", "shared-claim"), NoOpinion},
		{"listing claims", "node-a", claim("list", ""), NoOpinion},
		{"updating a used claim", "node-a", claim("update", "shared-claim"), NoOpinion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.User = nodeUser(tt.node)
			got, reason, err := n.Authorize(context.Background(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("decision = %v (%s), want %v", got, reason, tt.want)
			}
		})
	}
}
