package fieldmanager

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

var widgetGVK = schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}

// widgetSchema: spec.size, and spec.parts, a list of maps keyed by name.
func widgetSchema() *spec.Schema {
	part := spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}, Properties: map[string]spec.Schema{
		"name":  *spec.StringProperty(),
		"color": *spec.StringProperty(),
	}}}
	parts := spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"array"}, Items: &spec.SchemaOrArray{Schema: &part}}}
	parts.AddExtension("x-kubernetes-list-type", "map")
	parts.AddExtension("x-kubernetes-list-map-keys", []any{"name"})
	return &spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}, Properties: map[string]spec.Schema{
		"spec": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}, Properties: map[string]spec.Schema{
			"size":  *spec.Int64Property(),
			"parts": parts,
		}}},
	}}}
}

func emptyWidget() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(widgetGVK)
	u.SetName("w")
	u.SetNamespace("default")
	return u
}

func TestCustomResourceWithSchema(t *testing.T) {
	fixedClock(t)
	tc, err := CustomTypeConverter(widgetGVK, widgetSchema(), false)
	if err != nil {
		t.Fatal(err)
	}
	m := New(tc, widgetGVK, "")
	head := "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default, labels: {team: a}}\n"
	live := mustApply(t, m, emptyWidget(), head+"spec: {size: 1, parts: [{name: wheel, color: red}]}\n", "a", false)
	out := mustApply(t, m, live, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\nspec: {parts: [{name: door, color: blue}]}\n", "b", false)

	u, ok := out.(*unstructured.Unstructured)
	if !ok {
		t.Fatalf("result is %T, want *unstructured.Unstructured", out)
	}
	parts, _, _ := unstructured.NestedSlice(u.Object, "spec", "parts")
	if len(parts) != 2 {
		t.Fatalf("parts = %v, want wheel and door merged by name", parts)
	}
	if got := u.GetLabels()["team"]; got != "a" {
		t.Errorf("labels = %v: metadata should merge as ObjectMeta", u.GetLabels())
	}
	if !owns(t, out, "a", "f:metadata", "f:labels", "f:team") || !owns(t, out, "b", "f:spec", "f:parts", `k:{"name":"door"}`) {
		t.Errorf("ownership: %s", dumpManaged(t, out))
	}

	_, err = m.Apply(out, []byte("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\nspec: {size: 2}\n"), "b", false)
	want := `Apply failed with 1 conflict: conflict with "a": .spec.size`
	if !apierrors.IsConflict(err) || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if _, err := m.Apply(out, []byte("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {unknown: 1}\n"), "b", false); err == nil {
		t.Error("a field outside the schema should fail the apply")
	}
}

func TestCustomResourceWithoutSchemaIsAtomic(t *testing.T) {
	fixedClock(t)
	tc, err := CustomTypeConverter(widgetGVK, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	m := New(tc, widgetGVK, "")
	live := mustApply(t, m, emptyWidget(), `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"default"},"spec":{"parts":["a"],"anything":{"x":1}}}`, "a", false)
	// Lists are atomic without a schema: b replacing it conflicts with a.
	_, err = m.Apply(live, []byte(`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"default"},"spec":{"parts":["b"]}}`), "b", false)
	want := `Apply failed with 1 conflict: conflict with "a": .spec.parts`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	e := entryOf(t, live, "a", metav1.ManagedFieldsOperationApply)
	if e.APIVersion != "example.com/v1" {
		t.Errorf("apiVersion = %q", e.APIVersion)
	}
}
