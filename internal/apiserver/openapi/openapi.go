// Package openapi serves the OpenAPI v2 and v3 documents of the built-in
// resources. Schemas come from openapi-gen's output for k8s.io/api
// (zz_generated.openapi.go, refreshed by `make generate`); paths are built
// here from the resource table. kubectl uses them for explain, client-side
// apply and to learn that the server validates fields itself.
package openapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
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
// milliseconds, so it happens on first request, not at start.
type Service struct {
	resources []ResourceInfo
	version   string
	defs      map[string]common.OpenAPIDefinition // by REST-friendly name
	gvks      map[string][]map[string]any         // definition name -> x-kubernetes-group-version-kind
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
	for gvk, t := range scheme.Scheme.AllKnownTypes() {
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
	return s, nil
}

// prefixMux adapts http.ServeMux to kube-openapi's handler registration.
type prefixMux struct{ *http.ServeMux }

func (m prefixMux) HandlePrefix(path string, h http.Handler) { m.Handle(path, h) }

// Install registers /openapi/v2 and /openapi/v3 on mux.
func (s *Service) Install(mux *http.ServeMux) error {
	v2 := handler.NewOpenAPIServiceLazy(cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		sw, err := s.buildV2()
		return sw, "", err
	})))
	v2.RegisterOpenAPIVersionedService("/openapi/v2", mux)

	v3 := handler3.NewOpenAPIService()
	for _, gv := range s.groupVersions() {
		gv := gv
		v3.UpdateGroupVersionLazy(groupVersionPath(gv), cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
			doc, err := s.buildV3(gv)
			if err != nil {
				return nil, "", err
			}
			etag := fmt.Sprintf("%X", len(s.resources))
			return doc, etag, nil
		})))
	}
	return v3.RegisterOpenAPIV3VersionedService("/openapi/v3", prefixMux{mux})
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
	t, ok := scheme.Scheme.AllKnownTypes()[gvk]
	if !ok {
		return ""
	}
	return util.ToRESTFriendlyName(reflectName(t))
}

func reflectName(t reflect.Type) string { return t.PkgPath() + "." + t.Name() }

// operation is one path operation, independent of the document version.
type operation struct {
	method, id, action, desc string
	body, response           string // definition names
	gvk                      schema.GroupVersionKind
	params                   []string // query parameters
}

type pathItem struct {
	path       string
	namespaced bool
	named      bool
	ops        []operation
}

var writeParams = []string{"dryRun", "fieldManager", "fieldValidation", "pretty"}

// paths lists the operations of one resource.
func (s *Service) paths(r ResourceInfo) []pathItem {
	gv := r.gv()
	gvk := gv.WithKind(r.Kind)
	obj := s.kindDef(gvk)
	list := s.kindDef(gv.WithKind(r.Kind + "List"))
	base := "/" + groupVersionPath(gv)
	coll := base + "/" + r.Resource
	if r.Namespaced {
		coll = base + "/namespaces/{namespace}/" + r.Resource
	}
	// Operation IDs follow upstream's scheme, e.g. listAppsV1NamespacedDeployment.
	var kindID string
	for _, part := range strings.Split(strings.Split(r.Group, ".")[0], "-") {
		kindID += upperFirst(part)
	}
	if r.Group == "" {
		kindID = "Core"
	}
	kindID += upperFirst(r.Version)
	scope := ""
	if r.Namespaced {
		scope = "Namespaced"
	}
	id := func(verb string, suffix string) string { return verb + kindID + scope + r.Kind + suffix }
	if r.CreateOnly {
		return []pathItem{{path: coll, namespaced: r.Namespaced, ops: []operation{
			{method: "post", id: id("create", ""), action: "post", body: obj, response: obj, gvk: gvk, desc: "create a " + r.Kind, params: writeParams},
		}}}
	}
	status := "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
	items := []pathItem{
		{path: coll, namespaced: r.Namespaced, ops: []operation{
			{method: "get", id: id("list", ""), action: "list", response: list, gvk: gvk, desc: "list or watch objects of kind " + r.Kind,
				params: []string{"allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch", "pretty"}},
			{method: "post", id: id("create", ""), action: "post", body: obj, response: obj, gvk: gvk, desc: "create a " + r.Kind, params: writeParams},
			{method: "delete", id: id("deleteCollection", ""), action: "deletecollection", body: "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", response: status, gvk: gvk, desc: "delete collection of " + r.Kind,
				params: []string{"dryRun", "gracePeriodSeconds", "labelSelector", "fieldSelector", "propagationPolicy", "pretty"}},
		}},
		{path: coll + "/{name}", namespaced: r.Namespaced, named: true, ops: []operation{
			{method: "get", id: id("read", ""), action: "get", response: obj, gvk: gvk, desc: "read the specified " + r.Kind, params: []string{"pretty"}},
			{method: "put", id: id("replace", ""), action: "put", body: obj, response: obj, gvk: gvk, desc: "replace the specified " + r.Kind, params: writeParams},
			{method: "patch", id: id("patch", ""), action: "patch", body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: obj, gvk: gvk, desc: "partially update the specified " + r.Kind, params: append([]string{"force"}, writeParams...)},
			{method: "delete", id: id("delete", ""), action: "delete", body: "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", response: status, gvk: gvk, desc: "delete a " + r.Kind, params: []string{"dryRun", "gracePeriodSeconds", "propagationPolicy", "pretty"}},
		}},
	}
	if r.ReadOnly {
		for i := range items {
			items[i].ops = items[i].ops[:1] // the GETs come first
		}
		return items
	}
	for _, sub := range r.Subresources {
		target, subGVK := obj, gvk
		suffix := upperFirst(sub)
		subPath := coll + "/{name}/" + sub
		if postGVK, ok := postSubresources[sub]; ok {
			def := s.kindDef(postGVK)
			items = append(items, pathItem{path: subPath, namespaced: r.Namespaced, named: true, ops: []operation{
				{method: "post", id: id("create", suffix), action: "post", body: def, response: def, gvk: postGVK, desc: "create " + sub + " of a " + r.Kind, params: writeParams},
			}})
			continue
		}
		switch sub {
		case "scale":
			subGVK = schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
			target = s.kindDef(subGVK)
		case "finalize":
			// Upstream serves only PUT of the whole Namespace here.
			items = append(items, pathItem{path: subPath, named: true, ops: []operation{
				{method: "put", id: id("replace", suffix), action: "put", body: obj, response: obj, gvk: gvk, desc: "replace finalize of the specified " + r.Kind, params: writeParams},
			}})
			continue
		}
		items = append(items, pathItem{path: subPath, namespaced: r.Namespaced, named: true, ops: []operation{
			{method: "get", id: id("read", suffix), action: "get", response: target, gvk: subGVK, desc: "read " + sub + " of the specified " + r.Kind, params: []string{"pretty"}},
			{method: "put", id: id("replace", suffix), action: "put", body: target, response: target, gvk: subGVK, desc: "replace " + sub + " of the specified " + r.Kind, params: writeParams},
			{method: "patch", id: id("patch", suffix), action: "patch", body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: target, gvk: subGVK, desc: "partially update " + sub + " of the specified " + r.Kind, params: append([]string{"force"}, writeParams...)},
		}})
	}
	return items
}

// postSubresources are the subresources that take a POST of a kind other
// than their parent's (pods/eviction takes a policy/v1 Eviction), rather
// than get/put/patch of the parent.
var postSubresources = map[string]schema.GroupVersionKind{
	"binding":  {Version: "v1", Kind: "Binding"},
	"eviction": {Group: "policy", Version: "v1", Kind: "Eviction"},
	"token":    {Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"},
}

func gvkExt(gvk schema.GroupVersionKind) map[string]any {
	return map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
}

func (s *Service) buildV2() (*spec.Swagger, error) {
	paths := map[string]any{}
	roots := append([]string{}, commonDefs...)
	for _, r := range s.resources {
		for _, item := range s.paths(r) {
			pi := map[string]any{}
			if ps := pathParams(item); len(ps) > 0 {
				params := make([]any, len(ps))
				for i, p := range ps {
					params[i] = map[string]any{"name": p, "in": "path", "required": true, "type": "string", "uniqueItems": true}
				}
				pi["parameters"] = params
			}
			for _, op := range item.ops {
				o := s.opCommon(r, op)
				o["consumes"] = []string{"*/*"}
				o["produces"] = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
				var params []any
				for _, p := range op.params {
					params = append(params, map[string]any{"name": p, "in": "query", "type": paramType(p), "uniqueItems": true})
				}
				if op.body != "" {
					params = append(params, map[string]any{"name": "body", "in": "body", "required": true, "schema": map[string]any{"$ref": "#/definitions/" + op.body}})
					roots = append(roots, op.body)
				}
				if len(params) > 0 {
					o["parameters"] = params
				}
				responses := map[string]any{"401": map[string]any{"description": "Unauthorized"}}
				if op.response != "" {
					for _, code := range successCodes(op) {
						responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "schema": map[string]any{"$ref": "#/definitions/" + op.response}}
					}
					roots = append(roots, op.response)
				}
				o["responses"] = responses
				if op.method == "patch" {
					o["consumes"] = patchTypes
				}
				pi[op.method] = o
			}
			paths[item.path] = pi
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
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	out := &spec.Swagger{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("build openapi v2: %w", err)
	}
	out.Definitions = defs
	return out, nil
}

var patchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}

// opCommon returns the fields an operation has in both versions.
func (s *Service) opCommon(r ResourceInfo, op operation) map[string]any {
	return map[string]any{
		"operationId":                     op.id,
		"description":                     op.desc,
		"tags":                            []string{tag(r)},
		"x-kubernetes-action":             op.action,
		"x-kubernetes-group-version-kind": gvkExt(op.gvk),
	}
}

// successCodes are the success statuses of op: a create may answer 201
// Created or 202 Accepted as well as 200, as upstream documents.
func successCodes(op operation) []int {
	if op.method == "post" {
		return []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}
	}
	return []int{http.StatusOK}
}

func tag(r ResourceInfo) string {
	g := r.Group
	if g == "" {
		g = "core"
	}
	return strings.ReplaceAll(strings.Split(g, ".")[0], "-", "") + "_" + r.Version
}

func paramType(name string) string {
	switch name {
	case "limit", "timeoutSeconds", "gracePeriodSeconds":
		return "integer"
	case "watch", "allowWatchBookmarks", "sendInitialEvents", "force":
		return "boolean"
	}
	return "string"
}

func pathParams(item pathItem) []string {
	var ps []string
	if item.named {
		ps = append(ps, "name")
	}
	if item.namespaced {
		ps = append(ps, "namespace")
	}
	return ps
}

// buildV3 builds the OpenAPI v3 document of one group-version from the
// same operations and schemas, with refs under #/components/schemas.
func (s *Service) buildV3(gv schema.GroupVersion) (*spec3.OpenAPI, error) {
	paths := map[string]any{}
	roots := append([]string{}, commonDefs...)
	for _, r := range s.resources {
		if r.gv() != gv {
			continue
		}
		for _, item := range s.paths(r) {
			pi := map[string]any{}
			var params []any
			for _, p := range pathParams(item) {
				params = append(params, map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
			if len(params) > 0 {
				pi["parameters"] = params
			}
			for _, op := range item.ops {
				o := s.opCommon(r, op)
				var qps []any
				for _, p := range op.params {
					qps = append(qps, map[string]any{"name": p, "in": "query", "schema": map[string]any{"type": paramType(p)}, "uniqueItems": true})
				}
				if len(qps) > 0 {
					o["parameters"] = qps
				}
				if op.body != "" {
					media := map[string]any{"*/*": map[string]any{"schema": ref3(op.body)}}
					if op.method == "patch" {
						media = map[string]any{}
						for _, t := range patchTypes {
							media[t] = map[string]any{"schema": ref3(op.body)}
						}
					}
					o["requestBody"] = map[string]any{"content": media, "required": true}
					roots = append(roots, op.body)
				}
				responses := map[string]any{"401": map[string]any{"description": "Unauthorized"}}
				if op.response != "" {
					content := map[string]any{}
					for _, t := range []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"} {
						content[t] = map[string]any{"schema": ref3(op.response)}
					}
					for _, code := range successCodes(op) {
						responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "content": content}
					}
					roots = append(roots, op.response)
				}
				o["responses"] = responses
				pi[op.method] = o
			}
			paths[item.path] = pi
		}
	}
	doc := map[string]any{
		"openapi": "3.0.0",
		"info":    map[string]any{"title": "Kubernetes", "version": s.version},
		"paths":   paths,
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	out := &spec3.OpenAPI{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("build openapi v3 for %s: %w", gv, err)
	}
	out.Components = &spec3.Components{Schemas: map[string]*spec.Schema{}}
	for _, n := range s.closure(roots) {
		sc, err := v3Schema(s.schemaOf(n, false))
		if err != nil {
			return nil, fmt.Errorf("convert schema %s: %w", n, err)
		}
		out.Components.Schemas[n] = sc
	}
	return out, nil
}

func ref3(def string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + def}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
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
