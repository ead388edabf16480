package fieldmanager

import (
	"fmt"
	"maps"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

const objectMetaName = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

// CustomTypeConverter builds a converter for one custom resource version from
// its schema (nil schema: deduced, every field merged atomically, as upstream
// does for resources without a structural schema).
func CustomTypeConverter(gvk schema.GroupVersionKind, s *spec.Schema, preserveUnknownFields bool) (managedfields.TypeConverter, error) {
	if s == nil {
		return managedfields.NewDeducedTypeConverter(), nil
	}
	root := *s
	root.Extensions = maps.Clone(root.Extensions)
	root.AddExtension(gvkExtension, []any{map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}})
	// A CRD schema says no more of metadata than "type: object"; as upstream,
	// describe it as ObjectMeta so labels, annotations, finalizers and owner
	// references merge as they do for built-in kinds.
	root.Properties = maps.Clone(root.Properties)
	if root.Properties == nil {
		root.Properties = map[string]spec.Schema{}
	}
	root.Properties["metadata"] = spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef("#/components/schemas/" + objectMetaName)}}
	for _, field := range []string{"apiVersion", "kind"} {
		if _, ok := root.Properties[field]; !ok {
			root.Properties[field] = *spec.StringProperty()
		}
	}
	if len(root.Type) == 0 {
		root.Type = spec.StringOrArray{"object"}
	}
	schemas := maps.Clone(objectMetaSchemas())
	schemas[strings.Join([]string{gvk.Group, gvk.Version, gvk.Kind}, ".")] = &root
	tc, err := managedfields.NewTypeConverter(schemas, preserveUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("build type converter for %s: %w", gvk, err)
	}
	return tc, nil
}

// objectMetaSchemas is ObjectMeta and the definitions it references, which
// every custom resource's metadata is made of. Callers must not modify it.
var objectMetaSchemas = sync.OnceValue(func() map[string]*spec.Schema {
	defs := v3Definitions()
	out := map[string]*spec.Schema{}
	var walk func(string)
	walk = func(name string) {
		if _, seen := out[name]; seen {
			return
		}
		def, ok := defs[name]
		if !ok {
			return
		}
		out[name] = &def.Schema
		for _, dep := range def.Dependencies {
			walk(friendlyName(dep))
		}
	}
	walk(objectMetaName)
	return out
})
