package apiserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// Attaching to a pod goes through admission with operation CONNECT and the
// PodAttachOptions as the object, as upstream: a policy that refuses it
// stops the request before it reaches the node (conformance: "should be
// able to deny attaching pod").
func TestConnectGoesThroughAdmission(t *testing.T) {
	s := testserver.StartWith(t, testserver.Options{AccessControl: true})
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}
	if _, err := s.Client.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	if _, err := s.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-attach"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Connect},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/attach"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `object.kind != "PodAttachOptions" || object.container != "c"`, Message: "attaching to c is not allowed",
			}},
		},
	}
	if _, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "no-attach"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "no-attach",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}},
	}
	if _, err := s.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var r rawResponse
	testserver.Eventually(t, "the policy to refuse the attach", func() bool {
		r = rawWrite(t, s, http.MethodPost, "/api/v1/namespaces/default/pods/p/attach?container=c&stdout=true", "", "", "")
		return strings.Contains(stringField(r.body, "message"), "attaching to c is not allowed")
	})
	if r.code != http.StatusForbidden && r.code != http.StatusUnprocessableEntity {
		t.Errorf("refused attach answered %d", r.code)
	}
	// Another container is not the policy's business: the request gets
	// past admission (and fails later, as the node does not exist).
	r = rawWrite(t, s, http.MethodPost, "/api/v1/namespaces/default/pods/p/attach?container=other&stdout=true", "", "", "")
	if strings.Contains(stringField(r.body, "message"), "not allowed") {
		t.Errorf("attach to another container refused by the policy: %v", r.body)
	}
}

func stringField(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
