package dynamicadmission

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestObjectToUnstructured(t *testing.T) {
	podKind := corev1.SchemeGroupVersion.WithKind("Pod")

	m, err := ObjectToUnstructured(nil, podKind)
	if m != nil || err != nil {
		t.Errorf("nil object = %v, %v; want nil, nil", m, err)
	}

	// A typed object without TypeMeta gets the request's kind.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	if m, err = ObjectToUnstructured(pod, podKind); err != nil {
		t.Fatal(err)
	}
	if m["apiVersion"] != "v1" || m["kind"] != "Pod" {
		t.Errorf("typed pod: apiVersion %v, kind %v; want v1, Pod", m["apiVersion"], m["kind"])
	}
	if name, _, _ := unstructured.NestedString(m, "metadata", "name"); name != "p" {
		t.Errorf("typed pod: name %q, want p", name)
	}

	// An unstructured object keeps its own kind and is not modified.
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget"}}
	if m, err = ObjectToUnstructured(u, podKind); err != nil {
		t.Fatal(err)
	}
	if m["kind"] != "Widget" {
		t.Errorf("unstructured kind = %v, want Widget", m["kind"])
	}
	bare := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{}}}
	if m, err = ObjectToUnstructured(bare, podKind); err != nil {
		t.Fatal(err)
	}
	if m["kind"] != "Pod" {
		t.Errorf("kindless unstructured: kind = %v, want Pod", m["kind"])
	}
	if _, ok := bare.Object["kind"]; ok {
		t.Error("kindless unstructured: caller's object was modified")
	}
}

func TestIsAdmissionConfigurationKind(t *testing.T) {
	tests := []struct {
		gvk  schema.GroupVersionKind
		want bool
	}{
		{schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfiguration"}, true},
		{schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingAdmissionPolicyBinding"}, true},
		{schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "ValidatingWebhookConfiguration"}, false},
		{corev1.SchemeGroupVersion.WithKind("Pod"), false},
	}
	for _, tc := range tests {
		if got := IsAdmissionConfigurationKind(tc.gvk); got != tc.want {
			t.Errorf("IsAdmissionConfigurationKind(%v) = %v, want %v", tc.gvk, got, tc.want)
		}
	}
}
