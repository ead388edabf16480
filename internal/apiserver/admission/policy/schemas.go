package policy

import (
	"log/slog"
	"maps"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
)

// builtin is the converter of the built-in kinds, built on first use (it
// takes a few hundred milliseconds) and shared.
var builtin = sync.OnceValues(buildBuiltinConverter)

// BuiltinTypeConverter returns the structured-merge-diff converter of a
// built-in kind, from the OpenAPI definitions Skiff serves; nil for other
// kinds (custom resources).
func BuiltinTypeConverter(kind schema.GroupVersionKind) managedfields.TypeConverter {
	c, err := builtin()
	if err != nil || c.kinds[kind] == nil {
		return nil
	}
	return c.converter
}

type builtinConverter struct {
	converter managedfields.TypeConverter
	kinds     map[schema.GroupVersionKind]*spec.Schema
}

func buildBuiltinConverter() (*builtinConverter, error) {
	defs := openapi.GetOpenAPIDefinitions(func(path string) spec.Ref {
		return spec.MustCreateRef("#/definitions/" + modelName(path))
	})
	models := make(map[string]*spec.Schema, len(defs))
	for name, d := range defs {
		s := d.Schema
		s.Extensions = maps.Clone(s.Extensions)
		models[modelName(name)] = &s
	}
	// The converter finds a kind's model by its GVK extension.
	kinds := map[schema.GroupVersionKind]*spec.Schema{}
	for gvk, t := range scheme.Scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		m := models[modelName(t.PkgPath()+"."+t.Name())]
		if m == nil {
			continue
		}
		list, _ := m.Extensions["x-kubernetes-group-version-kind"].([]any)
		m.AddExtension("x-kubernetes-group-version-kind", append(list, map[string]any{
			"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind,
		}))
		kinds[gvk] = m
	}
	tc, err := managedfields.NewTypeConverter(models, false)
	if err != nil {
		slog.Error("admission policies: building the type converter failed; apply configurations merge without schemas", "err", err)
		return nil, err
	}
	return &builtinConverter{converter: tc, kinds: kinds}, nil
}

// modelName is a definition's REST-friendly name ("io.k8s.api.core.v1.Pod");
// generated names may already have that form.
func modelName(name string) string {
	if !strings.Contains(name, "/") {
		return name
	}
	return util.ToRESTFriendlyName(name)
}
