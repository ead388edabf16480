package openapi

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// CustomResource is one served version of a CRD.
type CustomResource struct {
	GVR            schema.GroupVersionResource
	Kind, ListKind string
	Namespaced     bool
	Subresources   []string     // "status", "scale"
	Schema         *spec.Schema // nil: preserve-unknown-fields (upstream then publishes an empty object schema)
	ShortNames     []string
}

func (cr CustomResource) gv() schema.GroupVersion { return cr.GVR.GroupVersion() }

func (cr CustomResource) listKind() string {
	if cr.ListKind == "" {
		return cr.Kind + "List"
	}
	return cr.ListKind
}

// definitionName names the kind's schema as upstream does: the group's
// labels reversed, then version and kind (com.example.stable.v1.CronTab).
func (cr CustomResource) definitionName() string { return modelName(cr.gv(), cr.Kind) }

func (cr CustomResource) listDefinitionName() string { return modelName(cr.gv(), cr.listKind()) }

func modelName(gv schema.GroupVersion, kind string) string {
	labels := strings.Split(gv.Group, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".") + "." + gv.Version + "." + kind
}

// customDeps are the built-in definitions every custom resource's schemas
// reference.
var customDeps = []string{
	"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
	"io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
}

// customSet is an immutable snapshot of the custom resources published.
type customSet struct {
	resources      []CustomResource // sorted by group, version, resource
	byGroupVersion map[schema.GroupVersion][]CustomResource
	groupVersions  []schema.GroupVersion // in order of first appearance in resources
	resourceHashes []string              // of each of resources
	groupHashes    map[schema.GroupVersion]string
	hash           string // of all resources
}

func newCustomSet(crs []CustomResource) customSet {
	crs = slices.Clone(crs)
	slices.SortFunc(crs, func(a, b CustomResource) int {
		return strings.Compare(a.GVR.String(), b.GVR.String())
	})
	set := customSet{resources: crs, byGroupVersion: map[schema.GroupVersion][]CustomResource{}, groupHashes: map[schema.GroupVersion]string{}}
	for _, cr := range crs {
		gv := cr.gv()
		if _, ok := set.byGroupVersion[gv]; !ok {
			set.groupVersions = append(set.groupVersions, gv)
		}
		set.byGroupVersion[gv] = append(set.byGroupVersion[gv], cr)
	}
	byGV := map[schema.GroupVersion]hash.Hash{}
	all := sha512.New()
	for _, cr := range crs {
		h := hashResource(cr)
		set.resourceHashes = append(set.resourceHashes, h)
		all.Write([]byte(h))
		if byGV[cr.gv()] == nil {
			byGV[cr.gv()] = sha512.New()
		}
		byGV[cr.gv()].Write([]byte(h))
	}
	for gv, h := range byGV {
		set.groupHashes[gv] = fmt.Sprintf("%X", h.Sum(nil))
	}
	if len(crs) > 0 {
		set.hash = fmt.Sprintf("%X", all.Sum(nil))
	}
	return set
}

// hashResource identifies the content of cr. Documents are re-encoded
// (and their v3 hashes change) exactly when it changes.
func hashResource(cr CustomResource) string {
	raw, err := json.Marshal(cr)
	if err != nil {
		// An unencodable schema cannot be served either; a unique tag
		// at least makes the next good one replace it.
		return fmt.Sprintf("unencodable-%p", cr.Schema)
	}
	return fmt.Sprintf("%X", sha512.Sum512(raw))
}

// SetCustomResources replaces the custom resources the documents describe
// (all of them), rebuilding v2 and the affected v3 group-versions. Safe for
// concurrent use with serving. Documents are built on their next request.
func (s *Service) SetCustomResources(crs []CustomResource) {
	next := newCustomSet(crs)
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.custom
	s.custom = next
	if s.v2 == nil {
		return // Install publishes whatever is set by then
	}
	if next.hash != prev.hash {
		s.v2.UpdateSpecLazy(s.v2Value(next))
	}
	for _, gv := range prev.groupVersions {
		if _, ok := next.byGroupVersion[gv]; ok {
			continue
		}
		if s.isBuiltin(gv) {
			s.v3.UpdateGroupVersionLazy(groupVersionPath(gv), s.v3Value(gv, next))
		} else {
			s.v3.DeleteGroupVersion(groupVersionPath(gv))
		}
	}
	for _, gv := range next.groupVersions {
		if prev.groupHashes[gv] != next.groupHashes[gv] {
			s.v3.UpdateGroupVersionLazy(groupVersionPath(gv), s.v3Value(gv, next))
		}
	}
}

// customV2Part is what one custom resource adds to the v2 document.
type customV2Part struct {
	paths map[string]spec.PathItem
	defs  map[string]spec.Schema
	refs  []string // built-in definitions the paths reference
}

// withCustomV2 returns base with the paths and definitions of set added.
// base is shared, not changed: only its maps are copied. Each resource's
// part is cached by its hash, so a change to one CRD renders only it.
func (s *Service) withCustomV2(base *spec.Swagger, set customSet) (*spec.Swagger, error) {
	out := *base
	out.Definitions = maps.Clone(base.Definitions)
	if out.Definitions == nil {
		out.Definitions = spec.Definitions{}
	}
	out.Paths = &spec.Paths{Paths: map[string]spec.PathItem{}}
	if base.Paths != nil {
		out.Paths.VendorExtensible = base.Paths.VendorExtensible
		out.Paths.Paths = maps.Clone(base.Paths.Paths)
	}
	s.partsMu.Lock()
	defer s.partsMu.Unlock()
	parts := make(map[string]customV2Part, len(set.resources))
	roots := slices.Clone(customDeps)
	for i, cr := range set.resources {
		hash := set.resourceHashes[i]
		part, ok := s.v2Parts[hash]
		if !ok {
			var err error
			if part, err = s.renderCustomV2(cr); err != nil {
				return nil, err
			}
		}
		parts[hash] = part
		if conflict := firstConflict(part.paths, base.Paths.Paths); conflict != "" {
			slog.Warn("custom resource path conflicts with a built-in one; not published", "resource", cr.GVR, "path", conflict)
			continue
		}
		maps.Copy(out.Paths.Paths, part.paths)
		for name, def := range part.defs {
			// Built-in definitions win a name clash, as upstream's
			// merge keeps the static document's.
			if _, ok := base.Definitions[name]; !ok {
				out.Definitions[name] = def
			}
		}
		roots = append(roots, part.refs...)
	}
	s.v2Parts = parts
	// The built-in document usually holds these already (Scale, Status);
	// add any it lacks.
	for _, n := range s.closure(roots) {
		if _, ok := out.Definitions[n]; !ok {
			out.Definitions[n] = s.schemaOf(n, true)
		}
	}
	return &out, nil
}

func (s *Service) renderCustomV2(cr CustomResource) (customV2Part, error) {
	part := customV2Part{
		paths: map[string]spec.PathItem{},
		defs: map[string]spec.Schema{
			cr.definitionName():     cr.schemaV2(s.typeMetaProps()),
			cr.listDefinitionName(): cr.listSchema(true, s.typeMetaProps()),
		},
	}
	for _, item := range cr.paths() {
		raw, refs := renderV2(item)
		var pi spec.PathItem
		if err := roundTripAny(raw, &pi); err != nil {
			return part, fmt.Errorf("build openapi v2 path %s: %w", item.path, err)
		}
		part.paths[item.path] = pi
		part.refs = append(part.refs, refs...)
	}
	return part, nil
}

func roundTripAny(in, out any) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// firstConflict returns the first of paths already in taken.
func firstConflict[V, W any](paths map[string]V, taken map[string]W) string {
	for p := range paths {
		if _, ok := taken[p]; ok {
			return p
		}
	}
	return ""
}

// Upstream's operations on custom resources take these query parameters,
// by action.
var (
	customListParams   = []string{"allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "shardSelector", "timeoutSeconds", "watch"}
	customWriteParams  = []string{"dryRun", "fieldManager", "fieldValidation"}
	customPatchParams  = []string{"dryRun", "fieldManager", "fieldValidation", "force"}
	customDeleteParams = []string{"dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential", "orphanDependents", "propagationPolicy"}
	customGetParams    = []string{"resourceVersion"}
)

// paths lists the operations of a custom resource as upstream's
// apiextensions builder does: a cluster-wide list for namespaced kinds, the
// collection, the object, and the status and scale subresources. Their GVK
// extension is the custom kind's, even for scale.
func (cr CustomResource) paths() []pathItem {
	gv := cr.gv()
	gvk := gv.WithKind(cr.Kind)
	obj, list := cr.definitionName(), cr.listDefinitionName()
	const (
		status        = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
		deleteOptions = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
		patch         = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
		scale         = "io.k8s.api.autoscaling.v1.Scale"
	)
	scope := ""
	if cr.Namespaced {
		scope = "Namespaced"
	}
	id := func(verb, sub string) string { return operationID(verb, gv, scope+cr.Kind+upperFirst(sub)) }
	item := func(path string, namespaced, named bool, ops ...operation) pathItem {
		return pathItem{path: path, namespaced: namespaced, named: named, kind: cr.Kind, query: []string{"pretty"}, tag: operationTag(gv), media: customMedia, ops: ops}
	}
	ok, created, accepted := http.StatusOK, http.StatusCreated, http.StatusAccepted
	listOp := operation{method: "get", action: "list", response: list, gvk: gvk, desc: "list objects of kind " + cr.Kind, params: customListParams}

	var items []pathItem
	root := "/apis/" + gv.Group + "/" + gv.Version + "/" + cr.GVR.Resource
	if cr.Namespaced {
		all := listOp
		all.id = operationID("list", gv, cr.Kind+"ForAllNamespaces")
		items = append(items, item(root, false, false, all))
		root = "/apis/" + gv.Group + "/" + gv.Version + "/namespaces/{namespace}/" + cr.GVR.Resource
	}
	listOp.id = id("list", "")
	items = append(items,
		item(root, cr.Namespaced, false,
			listOp,
			operation{method: "post", id: id("create", ""), action: "post", body: obj, response: obj, gvk: gvk, desc: "create " + article(cr.Kind) + cr.Kind, params: customWriteParams, codes: []int{ok, created, accepted}},
			operation{method: "delete", id: id("deletecollection", ""), action: "deletecollection", response: status, gvk: gvk, desc: "delete collection of " + cr.Kind, params: customListParams, codes: []int{ok}},
		),
		item(root+"/{name}", cr.Namespaced, true,
			operation{method: "get", id: id("read", ""), action: "get", response: obj, gvk: gvk, desc: "read the specified " + cr.Kind, params: customGetParams, codes: []int{ok}},
			operation{method: "put", id: id("replace", ""), action: "put", body: obj, response: obj, gvk: gvk, desc: "replace the specified " + cr.Kind, params: customWriteParams, codes: []int{ok, created}},
			operation{method: "delete", id: id("delete", ""), action: "delete", body: deleteOptions, optionalBody: true, response: status, gvk: gvk, desc: "delete " + article(cr.Kind) + cr.Kind, params: customDeleteParams, codes: []int{ok, accepted}},
			operation{method: "patch", id: id("patch", ""), action: "patch", body: patch, response: obj, gvk: gvk, desc: "partially update the specified " + cr.Kind, params: customPatchParams, codes: []int{ok}},
		),
	)
	for _, sub := range cr.Subresources {
		target := obj
		switch sub {
		case "status":
		case "scale":
			target = scale
		default:
			continue
		}
		items = append(items, item(root+"/{name}/"+sub, cr.Namespaced, true,
			operation{method: "get", id: id("read", sub), action: "get", response: target, gvk: gvk, desc: "read " + sub + " of the specified " + cr.Kind, params: customGetParams, codes: []int{ok}},
			operation{method: "put", id: id("replace", sub), action: "put", body: target, response: target, gvk: gvk, desc: "replace " + sub + " of the specified " + cr.Kind, params: customWriteParams, codes: []int{ok, created}},
			operation{method: "patch", id: id("patch", sub), action: "patch", body: patch, response: target, gvk: gvk, desc: "partially update " + sub + " of the specified " + cr.Kind, params: customPatchParams, codes: []int{ok}},
		))
	}
	return items
}
