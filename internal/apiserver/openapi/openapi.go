// Package openapi serves the OpenAPI v2 and v3 documents of the built-in
// resources and of custom resources. Built-in schemas come from
// openapi-gen's output for k8s.io/api (zz_generated.openapi.go, refreshed
// by `make generate`); paths are built here from the resource table.
// Custom resources (custom.go) are set at run time from their CRDs' schemas
// and published as upstream's apiextensions server does. kubectl uses the
// documents for explain, client-side apply and to learn that the server
// validates fields itself.
package openapi

import (
	"encoding/json"
	"fmt"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// ResourceInfo is what the documents need to know of a served resource.
type ResourceInfo struct {
	Group, Version, Resource, Kind string
	Namespaced                     bool
	Subresources                   []string
	// CreateOnly marks a virtual resource (TokenReview, SubjectAccessReview
	// and kin) whose only operation is POST on the collection.
	CreateOnly bool
	// ReadOnly marks a resource served by get and list only
	// (componentstatuses).
	ReadOnly bool
}

func (r ResourceInfo) gv() schema.GroupVersion {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}
}

// Service builds and serves the documents. Building takes tens of
// milliseconds, so it happens on first request, not at start. Custom
// resources can be replaced at any time (SetCustomResources); the built-in
// part of the v2 document is built once and shared by every rebuild.
type Service struct {
	resources []ResourceInfo
	version   string
	defs      map[string]common.OpenAPIDefinition // by REST-friendly name
	gvks      map[string][]map[string]any         // definition name -> x-kubernetes-group-version-kind
	builtinV2 cached.Value[*spec.Swagger]

	mu     sync.Mutex // guards custom and the handlers
	custom customSet
	v2     *handler.OpenAPIService  // nil until Install
	v3     *handler3.OpenAPIService // nil until Install

	partsMu sync.Mutex
	v2Parts map[string]customV2Part // by resource hash, from the last v2 build
}

// New prepares the documents for resources; version is the Kubernetes
// version reported in info.version.
func New(resources []ResourceInfo, version string) (*Service, error) {
	s := &Service{resources: resources, version: version, defs: map[string]common.OpenAPIDefinition{}, gvks: map[string][]map[string]any{}}
	for name, d := range GetOpenAPIDefinitions(func(path string) spec.Ref {
		return spec.MustCreateRef("#/definitions/" + friendly(path))
	}) {
		for i, dep := range d.Dependencies {
			d.Dependencies[i] = friendly(dep)
		}
		s.defs[friendly(name)] = d
	}
	// Every kind the scheme knows names its definition, as upstream's
	// definition namer does; kubectl explain finds schemas by it.
	for gvk, t := range knownTypes {
		if gvk.Version == "__internal" {
			continue
		}
		name := util.ToRESTFriendlyName(t.PkgPath() + "." + t.Name())
		if _, ok := s.defs[name]; !ok {
			continue
		}
		s.gvks[name] = append(s.gvks[name], map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
	}
	for _, list := range s.gvks {
		sort.Slice(list, func(i, j int) bool {
			return fmt.Sprint(list[i]["group"], list[i]["version"]) < fmt.Sprint(list[j]["group"], list[j]["version"])
		})
	}
	s.builtinV2 = cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		sw, err := s.buildV2()
		return sw, builtinETag, err
	}))
	s.custom = newCustomSet(nil)
	return s, nil
}

// builtinETag tags documents without custom resources. kube-openapi's
// handlers re-encode a document only when this tag changes, so documents
// with custom resources carry a hash of them instead.
const builtinETag = "builtin"

// prefixMux adapts http.ServeMux to kube-openapi's handler registration.
type prefixMux struct{ *http.ServeMux }

func (m prefixMux) HandlePrefix(path string, h http.Handler) { m.Handle(path, h) }

// Install registers /openapi/v2 and /openapi/v3 on mux.
func (s *Service) Install(mux *http.ServeMux) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v2 = handler.NewOpenAPIServiceLazy(s.v2Value(s.custom))
	s.v2.RegisterOpenAPIVersionedService("/openapi/v2", mux)

	s.v3 = handler3.NewOpenAPIService()
	for _, gv := range s.groupVersions() {
		s.v3.UpdateGroupVersionLazy(groupVersionPath(gv), s.v3Value(gv, s.custom))
	}
	for _, gv := range s.custom.groupVersions {
		if !s.isBuiltin(gv) {
			s.v3.UpdateGroupVersionLazy(groupVersionPath(gv), s.v3Value(gv, s.custom))
		}
	}
	return s.v3.RegisterOpenAPIV3VersionedService("/openapi/v3", prefixMux{mux})
}

// v2Value builds, on first request, the v2 document with the custom
// resources of set appended to the built-in one.
func (s *Service) v2Value(set customSet) cached.Value[*spec.Swagger] {
	if len(set.resources) == 0 {
		return s.builtinV2
	}
	return cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		base, _, err := s.builtinV2.Get()
		if err != nil {
			return nil, "", err
		}
		sw, err := s.withCustomV2(base, set)
		return sw, set.hash, err
	}))
}

// v3Value builds, on first request, the v3 document of gv.
func (s *Service) v3Value(gv schema.GroupVersion, set customSet) cached.Value[*spec3.OpenAPI] {
	crs := set.byGroupVersion[gv]
	etag := builtinETag
	if len(crs) > 0 {
		etag = set.groupHashes[gv]
	}
	return cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
		doc, err := s.buildV3(gv, crs)
		return doc, etag, err
	}))
}

func (s *Service) isBuiltin(gv schema.GroupVersion) bool {
	for _, r := range s.resources {
		if r.gv() == gv {
			return true
		}
	}
	return false
}

// groupVersionPath is the v3 document path of gv ("api/v1", "apis/apps/v1").
func groupVersionPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

func (s *Service) groupVersions() []schema.GroupVersion {
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for _, r := range s.resources {
		if !seen[r.gv()] {
			seen[r.gv()] = true
			out = append(out, r.gv())
		}
	}
	return out
}

// schemaOf returns the definition schema with its GVK extension. Types
// whose v3 schema uses constructs v2 lacks (oneOf) carry their v2 schema
// in an extension.
func (s *Service) schemaOf(name string, v2 bool) spec.Schema {
	sc := s.defs[name].Schema
	if embedded, ok := sc.Extensions[common.ExtensionV2Schema].(spec.Schema); ok {
		if v2 {
			sc = embedded
		} else {
			sc.Extensions = maps.Clone(sc.Extensions)
			delete(sc.Extensions, common.ExtensionV2Schema)
		}
	}
	if gvks, ok := s.gvks[name]; ok {
		sc.Extensions = maps.Clone(sc.Extensions)
		sc.AddExtension("x-kubernetes-group-version-kind", gvks)
	}
	return sc
}

// commonDefs are referenced by every group-version's operations.
var commonDefs = []string{
	"io.k8s.apimachinery.pkg.apis.meta.v1.Status",
	"io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
	"io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
	"io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
}

// closure returns roots and every definition they reference.
func (s *Service) closure(roots []string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if seen[n] {
			return
		}
		if _, ok := s.defs[n]; !ok {
			return
		}
		seen[n] = true
		for _, d := range s.defs[n].Dependencies {
			walk(d)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// kindDef finds the definition name of a served kind.
func (s *Service) kindDef(gvk schema.GroupVersionKind) string {
	t, ok := knownTypes[gvk]
	if !ok {
		return ""
	}
	return util.ToRESTFriendlyName(reflectName(t))
}

func reflectName(t reflect.Type) string { return t.PkgPath() + "." + t.Name() }

// knownTypes are the Go types of every served kind: client-go's scheme plus
// the CustomResourceDefinition and APIService types.
var knownTypes = func() map[schema.GroupVersionKind]reflect.Type {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, apiextensionsv1.AddToScheme, apiregistrationv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("openapi: register types: %v", err)) // programming error: fails every test
		}
	}
	return s.AllKnownTypes()
}()

// buildV2 builds the v2 document of the built-in resources.
func (s *Service) buildV2() (*spec.Swagger, error) {
	paths := map[string]any{}
	roots := append([]string{}, commonDefs...)
	for _, r := range s.resources {
		for _, item := range s.paths(r) {
			pi, refs := renderV2(item)
			paths[item.path] = pi
			roots = append(roots, refs...)
		}
	}
	defs := map[string]spec.Schema{}
	for _, n := range s.closure(roots) {
		defs[n] = s.schemaOf(n, true)
	}
	doc := map[string]any{
		"swagger": "2.0",
		"info":    map[string]any{"title": "Kubernetes", "version": s.version},
		"paths":   paths,
	}
	out := &spec.Swagger{}
	if err := roundTrip(doc, out); err != nil {
		return nil, fmt.Errorf("build openapi v2: %w", err)
	}
	out.Definitions = defs
	return out, nil
}

// buildV3 builds the OpenAPI v3 document of one group-version from the
// same operations and schemas, with refs under #/components/schemas: its
// built-in resources and the custom resources crs.
func (s *Service) buildV3(gv schema.GroupVersion, crs []CustomResource) (*spec3.OpenAPI, error) {
	paths := map[string]any{}
	var roots []string
	builtin := false
	for _, r := range s.resources {
		if r.gv() != gv {
			continue
		}
		builtin = true
		for _, item := range s.paths(r) {
			pi, refs := renderV3(item)
			paths[item.path] = pi
			roots = append(roots, refs...)
		}
	}
	// Upstream's documents of custom resources reference only what their
	// operations use; built-in group-versions carry the common kinds.
	info := map[string]any{"title": "Kubernetes CRD Swagger", "version": "v0.1.0"}
	if builtin {
		roots = append(roots, commonDefs...)
		info = map[string]any{"title": "Kubernetes", "version": s.version}
	}
	custom := map[string]*spec.Schema{}
	tm := s.typeMetaProps()
	for _, cr := range crs {
		items := cr.paths()
		if i := slices.IndexFunc(items, func(item pathItem) bool { return paths[item.path] != nil }); i >= 0 {
			slog.Warn("custom resource path conflicts with a built-in one; not published", "resource", cr.GVR, "path", items[i].path)
			continue
		}
		for _, item := range items {
			pi, refs := renderV3(item)
			paths[item.path] = pi
			roots = append(roots, refs...)
		}
		obj, list := cr.schemaV3(tm), cr.listSchema(false, tm)
		custom[cr.definitionName()] = &obj
		custom[cr.listDefinitionName()] = &list
	}
	doc := map[string]any{
		"openapi": "3.0.0",
		"info":    info,
		"paths":   paths,
	}
	out := &spec3.OpenAPI{}
	if err := roundTrip(doc, out); err != nil {
		return nil, fmt.Errorf("build openapi v3 for %s: %w", gv, err)
	}
	out.Components = &spec3.Components{Schemas: map[string]*spec.Schema{}}
	if len(custom) > 0 {
		roots = append(roots, customDeps...)
	}
	for _, n := range s.closure(roots) {
		sc, err := v3Schema(s.schemaOf(n, false))
		if err != nil {
			return nil, fmt.Errorf("convert schema %s: %w", n, err)
		}
		out.Components.Schemas[n] = sc
	}
	for n, sc := range custom {
		if _, ok := out.Components.Schemas[n]; !ok {
			out.Components.Schemas[n] = sc
		}
	}
	return out, nil
}

// roundTrip converts a document built as maps into kube-openapi's types.
func roundTrip(doc map[string]any, out any) error {
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// v3Schema rewrites a v2 schema's references to point into
// #/components/schemas.
func v3Schema(sc spec.Schema) (*spec.Schema, error) {
	raw, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	raw = []byte(strings.ReplaceAll(string(raw), `"#/definitions/`, `"#/components/schemas/`))
	out := &spec.Schema{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, err
	}
	return out, nil
}

// friendly returns the REST-friendly definition name (io.k8s.api.apps.v1.Deployment)
// of a Go type path; names the generator already made friendly pass unchanged.
func friendly(name string) string {
	if !strings.Contains(name, "/") {
		return name
	}
	return util.ToRESTFriendlyName(name)
}
