package fieldmanager

import (
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/kubernetes/scheme"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
)

// gvkExtension is the schema extension the type converter indexes kinds by.
const gvkExtension = "x-kubernetes-group-version-kind"

// BuiltinTypeConverter returns the converter for all built-in kinds (built once).
func BuiltinTypeConverter() (managedfields.TypeConverter, error) {
	return builtinConverter()
}

// builtinConverter is built on first use: converting every definition to a
// structured-merge-diff schema takes about a tenth of a second.
var builtinConverter = sync.OnceValues(func() (managedfields.TypeConverter, error) {
	schemas, known, err := builtinSchemas()
	if err != nil {
		return nil, err
	}
	tc, err := managedfields.NewTypeConverter(schemas, false)
	if err != nil {
		return nil, fmt.Errorf("build type converter for built-in kinds: %w", err)
	}
	return &fallbackConverter{known: known, typed: tc, deduced: managedfields.NewDeducedTypeConverter()}, nil
})

// fallbackConverter handles served kinds the generated definitions lack
// (none upstream) with the deduced converter, so their writes are still
// tracked, with every field atomic, rather than failing.
type fallbackConverter struct {
	known   map[schema.GroupVersionKind]bool
	typed   managedfields.TypeConverter
	deduced managedfields.TypeConverter
}

func (c *fallbackConverter) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	if c.known[obj.GetObjectKind().GroupVersionKind()] {
		return c.typed.ObjectToTyped(obj, opts...)
	}
	return c.deduced.ObjectToTyped(obj, opts...)
}

func (c *fallbackConverter) TypedToObject(tv *typed.TypedValue) (runtime.Object, error) {
	return c.typed.TypedToObject(tv)
}

// servedKinds lists the Go type of every built-in kind the server serves.
func servedKinds() (map[schema.GroupVersionKind]reflect.Type, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, apiextensionsv1.AddToScheme, apiregistrationv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("register built-in kinds: %w", err)
		}
	}
	return s.AllKnownTypes(), nil
}

// builtinSchemas returns the OpenAPI v3 schemas of the generated definitions,
// keyed by their REST-friendly names (the last segment of every $ref), with
// the group-version-kinds each Go type is registered as, which is what
// upstream feeds its type converter; and the kinds that have a schema.
func builtinSchemas() (map[string]*spec.Schema, map[schema.GroupVersionKind]bool, error) {
	kinds, err := servedKinds()
	if err != nil {
		return nil, nil, err
	}
	gvks := map[string][]schema.GroupVersionKind{}
	for gvk, t := range kinds {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		name := util.ToRESTFriendlyName(t.PkgPath() + "." + t.Name())
		gvks[name] = append(gvks[name], gvk)
	}
	defs := v3Definitions()
	out := make(map[string]*spec.Schema, len(defs))
	known := map[schema.GroupVersionKind]bool{}
	for name, def := range defs {
		s := def.Schema
		if list, ok := gvks[name]; ok {
			ext := make([]any, 0, len(list))
			for _, gvk := range list {
				ext = append(ext, map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
				known[gvk] = true
			}
			s.Extensions = maps.Clone(s.Extensions)
			s.AddExtension(gvkExtension, ext)
		}
		out[name] = &s
	}
	return out, known, nil
}

// v3Definitions returns the generated definitions by REST-friendly name,
// with references into #/components/schemas and without the v2 variants
// some carry in an extension (the converter must see the v3 schema).
func v3Definitions() map[string]common.OpenAPIDefinition {
	ref := func(path string) spec.Ref {
		return spec.MustCreateRef("#/components/schemas/" + friendlyName(path))
	}
	out := map[string]common.OpenAPIDefinition{}
	for path, def := range openapi.GetOpenAPIDefinitions(ref) {
		if _, ok := def.Schema.Extensions[common.ExtensionV2Schema]; ok {
			def.Schema.Extensions = maps.Clone(def.Schema.Extensions)
			delete(def.Schema.Extensions, common.ExtensionV2Schema)
		}
		out[friendlyName(path)] = def
	}
	return out
}

// friendlyName turns a Go package path name into the name the documents use
// ("io.k8s.api.apps.v1.Deployment").
func friendlyName(name string) string {
	if !strings.Contains(name, "/") {
		return name
	}
	return util.ToRESTFriendlyName(name)
}
