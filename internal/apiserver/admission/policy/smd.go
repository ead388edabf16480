package policy

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	smdschema "sigs.k8s.io/structured-merge-diff/v6/schema"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// TypeConverterFor returns the structured-merge-diff converter of kind (its
// OpenAPI schema), or nil for a kind without one.
type TypeConverterFor func(kind schema.GroupVersionKind) managedfields.TypeConverter

// mergeApplyConfiguration merges patch into current as server-side apply
// does, with the kind's schema: list and map keys from the schema, and
// atomic lists, maps and structs refused in the patch, as upstream.
func mergeApplyConfiguration(tc managedfields.TypeConverter, kind schema.GroupVersionKind, current, patch map[string]any) (map[string]any, error) {
	patchObj := &unstructured.Unstructured{Object: patch}
	patchObj.SetGroupVersionKind(kind)
	patchTyped, err := tc.ObjectToTyped(patchObj)
	if err != nil {
		return nil, fmt.Errorf("failed to convert patch object to typed object: %w", err)
	}
	if atomics := atomicPaths(nil, patchTyped.Schema(), patchTyped.TypeRef(), patchTyped.AsValue()); len(atomics) > 0 {
		return nil, fmt.Errorf("invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: %v", strings.Join(atomics, ", "))
	}
	liveTyped, err := tc.ObjectToTyped(&unstructured.Unstructured{Object: current}, typed.AllowDuplicates)
	if err != nil {
		return nil, fmt.Errorf("failed to convert original object to typed object: %w", err)
	}
	merged, err := liveTyped.Merge(patchTyped)
	if err != nil {
		return nil, fmt.Errorf("failed to merge patch: %w", err)
	}
	obj, err := tc.TypedToObject(merged)
	if err != nil {
		return nil, fmt.Errorf("failed to convert typed object to object: %w", err)
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("failed to convert typed object to object: unexpected %T", obj)
	}
	return u.Object, nil
}

// atomicPaths lists the places where v sets an atomic list, map or struct.
// Only struct fields and list items are descended into, as upstream.
func atomicPaths(path []fieldpath.PathElement, s *smdschema.Schema, tr smdschema.TypeRef, v value.Value) []string {
	atom, ok := s.Resolve(tr)
	if !ok {
		return nil
	}
	var out []string
	if v.IsMap() && atom.Map != nil {
		if atom.Map.ElementRelationship == smdschema.Atomic {
			out = append(out, pathString(path))
		}
		v.AsMap().Iterate(func(key string, field value.Value) bool {
			if sf, ok := atom.Map.FindField(key); ok {
				child := append(append([]fieldpath.PathElement(nil), path...), fieldpath.PathElement{FieldName: &key})
				out = append(out, atomicPaths(child, s, sf.Type, field)...)
			}
			return true
		})
	}
	if v.IsList() && atom.List != nil {
		if atom.List.ElementRelationship == smdschema.Atomic {
			out = append(out, pathString(path))
		}
		list := v.AsList()
		for i := 0; i < list.Length(); i++ {
			child := append(append([]fieldpath.PathElement(nil), path...), fieldpath.PathElement{Index: &i})
			out = append(out, atomicPaths(child, s, atom.List.ElementType, list.At(i))...)
		}
	}
	return out
}

func pathString(path []fieldpath.PathElement) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteString(p.String())
	}
	return b.String()
}
