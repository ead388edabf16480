package crdschema

import (
	"testing"

	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestCanonicalObjectMetaMatchesRoundTrip checks the fast path against
// upstream's round trip: whatever canonicalObjectMeta accepts must come
// back from GetObjectMeta+SetObjectMeta unchanged and without unknown
// fields, and inputs the round trip changes or drops must be refused.
func TestCanonicalObjectMetaMatchesRoundTrip(t *testing.T) {
	managed := map[string]any{
		"manager": "kubectl", "operation": "Update", "apiVersion": "example.com/v1", "time": "2026-12-01T06:24:04Z",
		"fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:spec": map[string]any{".": map[string]any{}, "f:color": map[string]any{}},
			`k:{"name":"a"}`: map[string]any{}},
	}
	owner := map[string]any{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1", "controller": true, "blockOwnerDeletion": false}
	cases := map[string]struct {
		md        map[string]any
		canonical bool
	}{
		"empty": {map[string]any{}, true},
		"typical": {map[string]any{
			"name": "w", "namespace": "ns", "uid": "0b6c", "resourceVersion": "12", "generation": int64(1),
			"creationTimestamp": "2026-12-01T06:24:04Z", "labels": map[string]any{"app": "x", "empty": ""},
			"annotations": map[string]any{"a": "b"}, "finalizers": []any{"example.com/f"},
			"ownerReferences": []any{owner}, "managedFields": []any{managed},
			"deletionTimestamp": "2026-12-01T06:25:00Z", "deletionGracePeriodSeconds": int64(0), "generateName": "w-", "selfLink": "/x",
		}, true},
		"unknown field":            {map[string]any{"name": "w", "foo": "bar"}, false},
		"wrong case":               {map[string]any{"Name": "w"}, false},
		"empty name":               {map[string]any{"name": ""}, false},
		"zero generation":          {map[string]any{"generation": int64(0)}, false},
		"float generation":         {map[string]any{"generation": float64(3)}, false},
		"int generation":           {map[string]any{"generation": 3}, false},
		"null timestamp":           {map[string]any{"creationTimestamp": nil}, false},
		"fractional timestamp":     {map[string]any{"creationTimestamp": "2026-12-01T06:24:04.5Z"}, false},
		"offset timestamp":         {map[string]any{"creationTimestamp": "2026-12-01T07:24:04+01:00"}, false},
		"zero timestamp":           {map[string]any{"creationTimestamp": "0001-01-01T00:00:00Z"}, false},
		"lower-case zone":          {map[string]any{"creationTimestamp": "2026-12-01T06:24:04z"}, false},
		"out of range timestamp":   {map[string]any{"creationTimestamp": "2026-02-30T06:24:04Z"}, false},
		"year zero timestamp":      {map[string]any{"creationTimestamp": "0000-01-01T00:00:00Z"}, true},
		"empty labels":             {map[string]any{"labels": map[string]any{}}, false},
		"non-string label":         {map[string]any{"labels": map[string]any{"a": int64(1)}}, false},
		"invalid utf-8":            {map[string]any{"name": "a\xffb"}, false},
		"empty finalizers":         {map[string]any{"finalizers": []any{}}, false},
		"owner without uid":        {map[string]any{"ownerReferences": []any{map[string]any{"apiVersion": "v1", "kind": "Pod", "name": "p"}}}, false},
		"owner unknown key":        {map[string]any{"ownerReferences": []any{map[string]any{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "x": "y"}}}, false},
		"managed empty manager":    {map[string]any{"managedFields": []any{map[string]any{"manager": ""}}}, false},
		"managed non-object field": {map[string]any{"managedFields": []any{map[string]any{"fieldsV1": map[string]any{"f:a": int64(1)}}}}, false},
		"managed empty fieldsV1":   {map[string]any{"managedFields": []any{map[string]any{"manager": "m", "fieldsV1": map[string]any{}}}}, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := canonicalObjectMeta(tc.md); got != tc.canonical {
				t.Fatalf("canonicalObjectMeta = %v, want %v", got, tc.canonical)
			}
			if !tc.canonical {
				return // the slow path handles it; only acceptance must be exact
			}
			obj := map[string]any{"metadata": runtime.DeepCopyJSONValue(tc.md)}
			om, found, paths, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{DropMalformedFields: true, ReturnUnknownFieldPaths: true})
			if err != nil || !found {
				t.Fatalf("round trip: found %v, err %v", found, err)
			}
			if err := schemaobjectmeta.SetObjectMeta(obj, om); err != nil {
				t.Fatal(err)
			}
			same := len(paths) == 0 && equality.Semantic.DeepEqual(obj["metadata"], map[string]any(tc.md)) && sameTypes(obj["metadata"], tc.md)
			if !same {
				t.Errorf("accepted metadata changes in the round trip: %#v -> %#v (unknown %v)", tc.md, obj["metadata"], paths)
			}
		})
	}
}

// sameTypes reports whether a and b hold the same dynamic types throughout
// (DeepEqual already compares values).
func sameTypes(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !sameTypes(x[k], y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameTypes(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return fmtType(a) == fmtType(b)
}

func fmtType(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "string"
	case int64:
		return "int64"
	case bool:
		return "bool"
	case float64:
		return "float64"
	}
	return "other"
}
