package crdschema

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// storedWidget is a custom object as the API server stores it after a
// create: server-set metadata and one managedFields entry.
const storedWidget = `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"creationTimestamp":"2026-12-01T06:24:04Z",` +
	`"generation":1,"labels":{"app":"bench"},"managedFields":[{"apiVersion":"example.com/v1","fieldsType":"FieldsV1",` +
	`"fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{".":{},"f:color":{},"f:replicas":{}}},` +
	`"manager":"bench","operation":"Update","time":"2026-12-01T06:24:04Z"}],"name":"w-00000001","namespace":"bench",` +
	`"uid":"0b6c4d2e-6a3f-4a43-9a43-2f0f3c2a1b11"},"spec":{"color":"blue","replicas":3}}`

// BenchmarkDecodeStored measures what reading a stored custom object
// costs beyond JSON decoding: pruning (with the ObjectMeta coercion) and
// defaulting, as the watch cache does for every event.
func BenchmarkDecodeStored(b *testing.B) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict([]byte(widgetCRD), crd); err != nil {
		b.Fatal(err)
	}
	DefaultCRD(crd)
	PrepareCRDForCreate(crd)
	v, err := Compile(crd, "v1")
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(storedWidget)
	b.ReportAllocs()
	for b.Loop() {
		var obj map[string]any
		if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &obj); err != nil {
			b.Fatal(err)
		}
		if pruned := v.Prune(obj); len(pruned) != 0 {
			b.Fatalf("pruned %v", pruned)
		}
		v.Default(obj)
	}
}
