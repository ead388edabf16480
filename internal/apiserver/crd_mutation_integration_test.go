package apiserver_test

import (
	"context"
	"fmt"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// Fields a mutating admission step adds to a custom object are pruned by
// the CRD's schema as the request's own are, as upstream's conformance
// spec "mutate custom resource with pruning" expects: a declared field
// stays, an undeclared one is dropped without failing the request.
func TestMutationOfCustomObjectIsPruned(t *testing.T) {
	s := testserver.StartWith(t, testserver.Options{AccessControl: true})
	ctx := context.Background()
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, nsObject("bench"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createEstablishedTB(t, s, benchWidgetCRD())
	policy := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "grow"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"bench.skiff.dev"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}},
				},
			}}},
			Mutations: []admissionregistrationv1.Mutation{{
				PatchType: admissionregistrationv1.PatchTypeJSONPatch,
				JSONPatch: &admissionregistrationv1.JSONPatch{Expression: `[
					JSONPatch{op: "add", path: "/spec/size", value: 7},
					JSONPatch{op: "add", path: "/spec/extra", value: "undeclared"}
				]`},
			}},
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
			FailurePolicy:      ptr.To(admissionregistrationv1.Fail),
		},
	}
	if _, err := s.Client.AdmissionregistrationV1().MutatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "grow"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "grow"},
	}
	if _, err := s.Client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	widgets := dynamic.NewForConfigOrDie(s.Config).Resource(schema.GroupVersionResource{Group: "bench.skiff.dev", Version: "v1", Resource: "widgets"}).Namespace("bench")
	var got *unstructured.Unstructured
	n := 0
	// The policy takes effect once the server's informers have it.
	testserver.Eventually(t, "the policy to mutate widgets", func() bool {
		n++
		w := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "bench.skiff.dev/v1", "kind": "Widget",
			"metadata": map[string]any{"name": fmt.Sprintf("w-%d", n)},
			"spec":     map[string]any{"color": "blue"},
		}}
		var err error
		if got, err = widgets.Create(ctx, w, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, mutated, _ := unstructured.NestedInt64(got.Object, "spec", "size")
		return mutated
	})
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 7 {
		t.Errorf("spec.size = %d, want the policy's 7", size)
	}
	if extra, found, _ := unstructured.NestedString(got.Object, "spec", "extra"); found {
		t.Errorf("spec.extra = %q survived: the schema does not declare it", extra)
	}
	stored, err := widgets.Get(ctx, got.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedString(stored.Object, "spec", "extra"); found {
		t.Error("spec.extra was stored")
	}
}
