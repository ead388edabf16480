package openapi

import (
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// operation is one path operation, independent of the document version.
type operation struct {
	method, id, action, desc string
	body, response           string // definition names
	optionalBody             bool   // DELETE takes DeleteOptions, but need not
	gvk                      schema.GroupVersionKind
	params                   []string // query parameters
	codes                    []int    // success statuses; nil: successCodes
}

// pathItem is one path and its operations.
type pathItem struct {
	path       string
	namespaced bool
	named      bool
	kind       string   // describes the {name} parameter
	query      []string // query parameters every operation takes
	tag        string
	media      *mediaTypes
	ops        []operation
}

// mediaTypes are what a path's operations consume and produce.
type mediaTypes struct {
	consumes, patch, produces []string
}

var (
	patchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}

	builtinMedia = &mediaTypes{
		consumes: []string{"*/*"},
		patch:    patchTypes,
		produces: []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"},
	}
	// Custom resources have no protobuf encoding nor strategic merge
	// patch.
	customMedia = &mediaTypes{
		consumes: []string{"application/json", "application/yaml"},
		patch:    []string{"application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"},
		produces: []string{"application/json", "application/yaml"},
	}
)

var writeParams = []string{"dryRun", "fieldManager", "fieldValidation", "pretty"}

// paths lists the operations of one built-in resource.
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
	scope := ""
	if r.Namespaced {
		scope = "Namespaced"
	}
	// Operation IDs follow upstream's scheme, e.g. listAppsV1NamespacedDeployment.
	id := func(verb, rest string) string { return operationID(verb, gv, rest) }
	item := func(path string, named bool, ops ...operation) pathItem {
		return pathItem{path: path, namespaced: r.Namespaced, named: named, kind: r.Kind, tag: operationTag(gv), media: builtinMedia, ops: ops}
	}
	if r.CreateOnly {
		return []pathItem{item(coll, false,
			operation{method: "post", id: id("create", scope+r.Kind), action: "post", body: obj, response: obj, gvk: gvk, desc: "create " + article(r.Kind) + r.Kind, params: writeParams},
		)}
	}
	status := "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
	items := []pathItem{
		item(coll, false,
			operation{method: "get", id: id("list", scope+r.Kind), action: "list", response: list, gvk: gvk, desc: "list or watch objects of kind " + r.Kind,
				params: []string{"allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch", "pretty"}},
			operation{method: "post", id: id("create", scope+r.Kind), action: "post", body: obj, response: obj, gvk: gvk, desc: "create " + article(r.Kind) + r.Kind, params: writeParams},
			operation{method: "delete", id: id("deletecollection", scope+r.Kind), action: "deletecollection", body: "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", response: status, gvk: gvk, desc: "delete collection of " + r.Kind,
				params: []string{"dryRun", "gracePeriodSeconds", "labelSelector", "fieldSelector", "propagationPolicy", "pretty"}},
		),
		item(coll+"/{name}", true,
			operation{method: "get", id: id("read", scope+r.Kind), action: "get", response: obj, gvk: gvk, desc: "read the specified " + r.Kind, params: []string{"pretty"}},
			operation{method: "put", id: id("replace", scope+r.Kind), action: "put", body: obj, response: obj, gvk: gvk, desc: "replace the specified " + r.Kind, params: writeParams},
			operation{method: "patch", id: id("patch", scope+r.Kind), action: "patch", body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: obj, gvk: gvk, desc: "partially update the specified " + r.Kind, params: append([]string{"force"}, writeParams...)},
			operation{method: "delete", id: id("delete", scope+r.Kind), action: "delete", body: "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", response: status, gvk: gvk, desc: "delete " + article(r.Kind) + r.Kind, params: []string{"dryRun", "gracePeriodSeconds", "propagationPolicy", "pretty"}},
		),
	}
	if r.ReadOnly {
		for i := range items {
			items[i].ops = items[i].ops[:1] // the GETs come first
		}
		return items
	}
	for _, sub := range r.Subresources {
		target, subGVK := obj, gvk
		rest := scope + r.Kind + upperFirst(sub)
		subPath := coll + "/{name}/" + sub
		if postGVK, ok := postSubresources[sub]; ok {
			def := s.kindDef(postGVK)
			items = append(items, item(subPath, true,
				operation{method: "post", id: id("create", rest), action: "post", body: def, response: def, gvk: postGVK, desc: "create " + sub + " of " + article(r.Kind) + r.Kind, params: writeParams},
			))
			continue
		}
		switch sub {
		case "scale":
			subGVK = schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
			target = s.kindDef(subGVK)
		case "finalize":
			// Upstream serves only PUT of the whole Namespace here.
			items = append(items, pathItem{path: subPath, named: true, kind: r.Kind, tag: operationTag(gv), media: builtinMedia, ops: []operation{
				{method: "put", id: id("replace", rest), action: "put", body: obj, response: obj, gvk: gvk, desc: "replace finalize of the specified " + r.Kind, params: writeParams},
			}})
			continue
		}
		items = append(items, item(subPath, true,
			operation{method: "get", id: id("read", rest), action: "get", response: target, gvk: subGVK, desc: "read " + sub + " of the specified " + r.Kind, params: []string{"pretty"}},
			operation{method: "put", id: id("replace", rest), action: "put", body: target, response: target, gvk: subGVK, desc: "replace " + sub + " of the specified " + r.Kind, params: writeParams},
			operation{method: "patch", id: id("patch", rest), action: "patch", body: "io.k8s.apimachinery.pkg.apis.meta.v1.Patch", response: target, gvk: subGVK, desc: "partially update " + sub + " of the specified " + r.Kind, params: append([]string{"force"}, writeParams...)},
		))
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

// operationID builds an operation ID as upstream does: the verb, the group
// without ".k8s.io" and the version in camel case, then the rest
// ("deletecollection" + "NamespacedPod" gives
// deleteCoreV1CollectionNamespacedPod).
func operationID(verb string, gv schema.GroupVersion, rest string) string {
	if after, ok := strings.CutPrefix(verb, "delete"); ok && after != "" {
		verb, rest = "delete", after+rest
	}
	return verb + camel(groupName(gv), true) + camel(gv.Version, true) + camel(rest, true)
}

// operationTag is upstream's tag of a group-version's operations
// ("apps_v1", "rbacAuthorization_v1", "stableExampleCom_v1").
func operationTag(gv schema.GroupVersion) string {
	return camel(groupName(gv), false) + "_" + camel(gv.Version, false)
}

func groupName(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "core"
	}
	return strings.TrimSuffix(gv.Group, ".k8s.io")
}

// camel drops characters that cannot be in an operation ID and capitalizes
// the letter after each one dropped (and the first, if upper).
func camel(s string, upper bool) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsLetter(r) || r == '_' || (i > 0 && unicode.IsDigit(r)) {
			if upper {
				r = unicode.ToUpper(r)
				upper = false
			}
			b.WriteRune(r)
			continue
		}
		upper = true
	}
	return b.String()
}

// article is the article before a kind in operation descriptions ("a ",
// "an "), as upstream chooses it.
func article(kind string) string {
	if kind == "" || (strings.HasSuffix(kind, "s") && !strings.HasSuffix(kind, "ss")) {
		return ""
	}
	if strings.ContainsRune("aeiouAEIOU", rune(kind[0])) {
		return "an "
	}
	return "a "
}

func gvkExt(gvk schema.GroupVersionKind) map[string]any {
	return map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
}

// opCommon returns the fields an operation has in both versions.
func opCommon(item pathItem, op operation) map[string]any {
	return map[string]any{
		"operationId":                     op.id,
		"description":                     op.desc,
		"tags":                            []string{item.tag},
		"x-kubernetes-action":             op.action,
		"x-kubernetes-group-version-kind": gvkExt(op.gvk),
	}
}

// successCodes are the success statuses of op: a create may answer 201
// Created or 202 Accepted as well as 200, as upstream documents.
func successCodes(op operation) []int {
	if op.codes != nil {
		return op.codes
	}
	if op.method == "post" {
		return []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}
	}
	return []int{http.StatusOK}
}

func paramType(name string) string {
	switch name {
	case "limit", "timeoutSeconds", "gracePeriodSeconds":
		return "integer"
	case "watch", "allowWatchBookmarks", "sendInitialEvents", "force", "orphanDependents", "ignoreStoreReadErrorWithClusterBreakingPotential":
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

func paramDescription(item pathItem, name string) string {
	switch name {
	case "name":
		return "name of the " + item.kind
	case "namespace":
		return "object name and auth scope, such as for teams and projects"
	}
	return ""
}

// renderV2 returns item as an OpenAPI v2 path item and the definitions
// its operations reference.
func renderV2(item pathItem) (map[string]any, []string) {
	var roots []string
	pi := map[string]any{}
	var shared []any
	for _, p := range pathParams(item) {
		shared = append(shared, map[string]any{"name": p, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": paramDescription(item, p)})
	}
	for _, p := range item.query {
		shared = append(shared, map[string]any{"name": p, "in": "query", "type": paramType(p), "uniqueItems": true})
	}
	if len(shared) > 0 {
		pi["parameters"] = shared
	}
	for _, op := range item.ops {
		o := opCommon(item, op)
		o["consumes"] = item.media.consumes
		if op.method == "patch" {
			o["consumes"] = item.media.patch
		}
		o["produces"] = item.media.produces
		var params []any
		if op.body != "" {
			params = append(params, map[string]any{"name": "body", "in": "body", "required": !op.optionalBody, "schema": ref2(op.body)})
			roots = append(roots, op.body)
		}
		for _, p := range op.params {
			params = append(params, map[string]any{"name": p, "in": "query", "type": paramType(p), "uniqueItems": true})
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		responses := map[string]any{"401": map[string]any{"description": "Unauthorized"}}
		if op.response != "" {
			for _, code := range successCodes(op) {
				responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "schema": ref2(op.response)}
			}
			roots = append(roots, op.response)
		}
		o["responses"] = responses
		pi[op.method] = o
	}
	return pi, roots
}

// renderV3 returns item as an OpenAPI v3 path item and the definitions
// its operations reference.
func renderV3(item pathItem) (map[string]any, []string) {
	var roots []string
	pi := map[string]any{}
	var shared []any
	for _, p := range pathParams(item) {
		shared = append(shared, map[string]any{"name": p, "in": "path", "required": true, "description": paramDescription(item, p), "schema": map[string]any{"type": "string", "uniqueItems": true}})
	}
	for _, p := range item.query {
		shared = append(shared, map[string]any{"name": p, "in": "query", "schema": map[string]any{"type": paramType(p), "uniqueItems": true}})
	}
	if len(shared) > 0 {
		pi["parameters"] = shared
	}
	for _, op := range item.ops {
		o := opCommon(item, op)
		var params []any
		for _, p := range op.params {
			params = append(params, map[string]any{"name": p, "in": "query", "schema": map[string]any{"type": paramType(p), "uniqueItems": true}})
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.body != "" {
			types := item.media.consumes
			if op.method == "patch" {
				types = item.media.patch
			}
			body := map[string]any{"content": mediaContent(types, op.body)}
			if !op.optionalBody {
				body["required"] = true
			}
			o["requestBody"] = body
			roots = append(roots, op.body)
		}
		responses := map[string]any{"401": map[string]any{"description": "Unauthorized"}}
		if op.response != "" {
			for _, code := range successCodes(op) {
				responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "content": mediaContent(item.media.produces, op.response)}
			}
			roots = append(roots, op.response)
		}
		o["responses"] = responses
		pi[op.method] = o
	}
	return pi, roots
}

func mediaContent(types []string, def string) map[string]any {
	content := make(map[string]any, len(types))
	for _, t := range types {
		content[t] = map[string]any{"schema": ref3(def)}
	}
	return content
}

func ref2(def string) map[string]any {
	return map[string]any{"$ref": "#/definitions/" + def}
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
