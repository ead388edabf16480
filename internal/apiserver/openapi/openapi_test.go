package openapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var testResources = []ResourceInfo{
	{Version: "v1", Resource: "namespaces", Kind: "Namespace", Subresources: []string{"finalize"}},
	{Version: "v1", Resource: "pods", Kind: "Pod", Namespaced: true, Subresources: []string{"status", "binding", "eviction"}},
	{Version: "v1", Resource: "serviceaccounts", Kind: "ServiceAccount", Namespaced: true, Subresources: []string{"token"}},
	{Group: "apps", Version: "v1", Resource: "deployments", Kind: "Deployment", Namespaced: true, Subresources: []string{"status", "scale"}},
	{Group: "batch", Version: "v1", Resource: "jobs", Kind: "Job", Namespaced: true, Subresources: []string{"status"}},
	{Group: "authentication.k8s.io", Version: "v1", Resource: "tokenreviews", Kind: "TokenReview", CreateOnly: true},
	{Group: "authentication.k8s.io", Version: "v1", Resource: "selfsubjectreviews", Kind: "SelfSubjectReview", CreateOnly: true},
	{Group: "authorization.k8s.io", Version: "v1", Resource: "subjectaccessreviews", Kind: "SubjectAccessReview", CreateOnly: true},
	{Group: "authorization.k8s.io", Version: "v1", Resource: "localsubjectaccessreviews", Kind: "LocalSubjectAccessReview", Namespaced: true, CreateOnly: true},
	{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews", Kind: "SelfSubjectAccessReview", CreateOnly: true},
	{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectrulesreviews", Kind: "SelfSubjectRulesReview", CreateOnly: true},
}

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	s, err := New(testResources, "v1.37.2")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := s.Install(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// refs collects every $ref in a document.
func refs(v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				out[s] = true
			}
			refs(e, out)
		}
	case []any:
		for _, e := range x {
			refs(e, out)
		}
	}
}

func TestV2HasKindsPathsAndResolvableRefs(t *testing.T) {
	doc := getJSON(t, serve(t).URL+"/openapi/v2")
	defs := doc["definitions"].(map[string]any)
	dep, ok := defs["io.k8s.api.apps.v1.Deployment"].(map[string]any)
	if !ok {
		t.Fatal("no io.k8s.api.apps.v1.Deployment definition")
	}
	gvk, _ := json.Marshal(dep["x-kubernetes-group-version-kind"])
	if string(gvk) != `[{"group":"apps","kind":"Deployment","version":"v1"}]` {
		t.Fatalf("Deployment GVK extension = %s", gvk)
	}
	paths := doc["paths"].(map[string]any)
	item, ok := paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"].(map[string]any)
	if !ok {
		t.Fatal("no deployment item path")
	}
	if !strings.Contains(mustJSON(item["patch"]), `"fieldValidation"`) {
		t.Fatal("patch operation lacks the fieldValidation parameter kubectl looks for")
	}
	all := map[string]bool{}
	refs(doc, all)
	for r := range all {
		name := strings.TrimPrefix(r, "#/definitions/")
		if _, ok := defs[name]; !ok {
			t.Errorf("unresolved reference %s", r)
		}
	}
	if q := defs["io.k8s.apimachinery.pkg.api.resource.Quantity"].(map[string]any); q["oneOf"] != nil {
		t.Error("v2 Quantity uses oneOf, which v2 (and kubectl's protobuf parser) rejects")
	}
}

func TestV3IndexAndGroupDocuments(t *testing.T) {
	srv := serve(t)
	index := getJSON(t, srv.URL+"/openapi/v3")["paths"].(map[string]any)
	entry, ok := index["apis/apps/v1"].(map[string]any)
	if !ok {
		t.Fatalf("index lacks apis/apps/v1: %v", index)
	}
	if _, ok := index["api/v1"]; !ok {
		t.Fatal("index lacks api/v1")
	}
	doc := getJSON(t, srv.URL+entry["serverRelativeURL"].(string))
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	if _, ok := schemas["io.k8s.api.apps.v1.Deployment"]; !ok {
		t.Fatal("apps/v1 document lacks the Deployment schema")
	}
	if _, ok := schemas["io.k8s.api.core.v1.Pod"]; ok {
		t.Error("apps/v1 document carries an unrelated top-level kind")
	}
	all := map[string]bool{}
	refs(doc, all)
	for r := range all {
		name, found := strings.CutPrefix(r, "#/components/schemas/")
		if !found {
			t.Errorf("reference %s does not point into components", r)
			continue
		}
		if _, ok := schemas[name]; !ok {
			t.Errorf("unresolved reference %s", r)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
