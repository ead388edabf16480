package fieldmanager

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

func TestBuiltinTypeConverterUsesSchemas(t *testing.T) {
	tc, err := BuiltinTypeConverter()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := BuiltinTypeConverter()
	if tc != again {
		t.Error("the converter should be built once")
	}
	pod := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"spec": map[string]any{"containers": []any{map[string]any{"name": "a", "image": "x"}}},
	}}
	tv, err := tc.ObjectToTyped(pod)
	if err != nil {
		t.Fatalf("Pod: %v", err)
	}
	set, err := tv.ToFieldSet()
	if err != nil {
		t.Fatal(err)
	}
	// Containers are a list keyed by name, as the schema says.
	keyed := fieldpath.MakePathOrDie("spec", "containers", fieldpath.KeyByFields("name", "a"), "image")
	if !set.Has(keyed) {
		t.Errorf("field set %v lacks %v", set, keyed)
	}
	bogus := pod.DeepCopy()
	bogus.Object["spec"].(map[string]any)["bogus"] = true
	if _, err := tc.ObjectToTyped(bogus); err == nil {
		t.Error("a field the Pod schema lacks should not convert")
	}
}

func TestBuiltinTypeConverterFallsBackForKindsWithoutSchema(t *testing.T) {
	tc, err := BuiltinTypeConverter()
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"anything": 1}}}
	obj.SetGroupVersionKind(schema.GroupVersionKind{Group: "unknown.example.com", Version: "v1", Kind: "Thing"})
	if _, err := tc.ObjectToTyped(obj); err != nil {
		t.Errorf("kind without a schema: %v", err)
	}
}
