package openapi

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// postOnly are the operations that are a single POST whose body and answer
// are a kind other than a stored parent's: the reviews and the pod and
// service account subresources.
var postOnly = []struct {
	doc, path, id, def, gvk string
}{
	{"apis/authentication.k8s.io/v1", "/apis/authentication.k8s.io/v1/tokenreviews",
		"createAuthenticationV1TokenReview", "io.k8s.api.authentication.v1.TokenReview",
		`{"group":"authentication.k8s.io","kind":"TokenReview","version":"v1"}`},
	{"apis/authentication.k8s.io/v1", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
		"createAuthenticationV1SelfSubjectReview", "io.k8s.api.authentication.v1.SelfSubjectReview",
		`{"group":"authentication.k8s.io","kind":"SelfSubjectReview","version":"v1"}`},
	{"apis/authorization.k8s.io/v1", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
		"createAuthorizationV1SubjectAccessReview", "io.k8s.api.authorization.v1.SubjectAccessReview",
		`{"group":"authorization.k8s.io","kind":"SubjectAccessReview","version":"v1"}`},
	{"apis/authorization.k8s.io/v1", "/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews",
		"createAuthorizationV1NamespacedLocalSubjectAccessReview", "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
		`{"group":"authorization.k8s.io","kind":"LocalSubjectAccessReview","version":"v1"}`},
	{"apis/authorization.k8s.io/v1", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
		"createAuthorizationV1SelfSubjectAccessReview", "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
		`{"group":"authorization.k8s.io","kind":"SelfSubjectAccessReview","version":"v1"}`},
	{"apis/authorization.k8s.io/v1", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
		"createAuthorizationV1SelfSubjectRulesReview", "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
		`{"group":"authorization.k8s.io","kind":"SelfSubjectRulesReview","version":"v1"}`},
	{"api/v1", "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
		"createCoreV1NamespacedServiceAccountToken", "io.k8s.api.authentication.v1.TokenRequest",
		`{"group":"authentication.k8s.io","kind":"TokenRequest","version":"v1"}`},
	{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/eviction",
		"createCoreV1NamespacedPodEviction", "io.k8s.api.policy.v1.Eviction",
		`{"group":"policy","kind":"Eviction","version":"v1"}`},
	{"api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/binding",
		"createCoreV1NamespacedPodBinding", "io.k8s.api.core.v1.Binding",
		`{"group":"","kind":"Binding","version":"v1"}`},
}

// methods returns the HTTP methods of a path item, sorted.
func methods(item map[string]any) []string {
	var out []string
	for k := range item {
		if k != "parameters" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func TestV2PostOnlyOperations(t *testing.T) {
	doc := getJSON(t, serve(t).URL+"/openapi/v2")
	paths := doc["paths"].(map[string]any)
	defs := doc["definitions"].(map[string]any)
	for _, tc := range postOnly {
		t.Run(tc.id, func(t *testing.T) {
			item, ok := paths[tc.path].(map[string]any)
			if !ok {
				t.Fatalf("no path %s", tc.path)
			}
			if got := methods(item); !slices.Equal(got, []string{"post"}) {
				t.Fatalf("methods = %v, want only post", got)
			}
			post := item["post"].(map[string]any)
			if post["operationId"] != tc.id {
				t.Errorf("operationId = %v, want %s", post["operationId"], tc.id)
			}
			if post["x-kubernetes-action"] != "post" {
				t.Errorf("x-kubernetes-action = %v", post["x-kubernetes-action"])
			}
			if got := mustJSON(post["x-kubernetes-group-version-kind"]); got != tc.gvk {
				t.Errorf("x-kubernetes-group-version-kind = %s, want %s", got, tc.gvk)
			}
			ref := "#/definitions/" + tc.def
			var body string
			for _, p := range post["parameters"].([]any) {
				if p := p.(map[string]any); p["in"] == "body" {
					body = mustJSON(p["schema"])
				}
			}
			if want := mustJSON(map[string]string{"$ref": ref}); body != want {
				t.Errorf("body schema = %s, want %s", body, want)
			}
			responses := post["responses"].(map[string]any)
			for _, code := range []string{"200", "201", "202"} {
				r, _ := responses[code].(map[string]any)
				if got := mustJSON(r["schema"]); !strings.Contains(got, ref) {
					t.Errorf("response %s schema = %s, want %s", code, got, ref)
				}
			}
			def, ok := defs[tc.def].(map[string]any)
			if !ok {
				t.Fatalf("no definition %s (kubectl explain needs it)", tc.def)
			}
			if got := mustJSON(def["x-kubernetes-group-version-kind"]); got != "["+tc.gvk+"]" {
				t.Errorf("definition GVK = %s, want [%s]", got, tc.gvk)
			}
		})
	}
	if _, ok := paths["/apis/authorization.k8s.io/v1/subjectaccessreviews/{name}"]; ok {
		t.Error("create-only resource has an item path")
	}
}

func TestV3PostOnlyOperations(t *testing.T) {
	srv := serve(t)
	docs := map[string]map[string]any{}
	for _, tc := range postOnly {
		t.Run(tc.id, func(t *testing.T) {
			doc, ok := docs[tc.doc]
			if !ok {
				doc = getJSON(t, srv.URL+"/openapi/v3/"+tc.doc)
				docs[tc.doc] = doc
			}
			item, ok := doc["paths"].(map[string]any)[tc.path].(map[string]any)
			if !ok {
				t.Fatalf("%s document lacks %s", tc.doc, tc.path)
			}
			if got := methods(item); !slices.Equal(got, []string{"post"}) {
				t.Fatalf("methods = %v, want only post", got)
			}
			post := item["post"].(map[string]any)
			if post["operationId"] != tc.id {
				t.Errorf("operationId = %v, want %s", post["operationId"], tc.id)
			}
			ref := mustJSON(map[string]string{"$ref": "#/components/schemas/" + tc.def})
			var body struct {
				Content map[string]struct{ Schema json.RawMessage } `json:"content"`
			}
			if err := json.Unmarshal([]byte(mustJSON(post["requestBody"])), &body); err != nil {
				t.Fatal(err)
			}
			if got := string(body.Content["*/*"].Schema); got != ref {
				t.Errorf("request body schema = %s, want %s", got, ref)
			}
			ok200 := mustJSON(post["responses"].(map[string]any)["200"])
			if !strings.Contains(ok200, ref) {
				t.Errorf("200 response = %s, want %s", ok200, ref)
			}
			schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
			if _, ok := schemas[tc.def]; !ok {
				t.Errorf("%s document lacks schema %s", tc.doc, tc.def)
			}
		})
	}
}

func TestV2NamespaceFinalizeIsPutOnly(t *testing.T) {
	doc := getJSON(t, serve(t).URL+"/openapi/v2")
	item, ok := doc["paths"].(map[string]any)["/api/v1/namespaces/{name}/finalize"].(map[string]any)
	if !ok {
		t.Fatal("no namespace finalize path")
	}
	if got := methods(item); !slices.Equal(got, []string{"put"}) {
		t.Fatalf("methods = %v, want only put", got)
	}
	if id := item["put"].(map[string]any)["operationId"]; id != "replaceCoreV1NamespaceFinalize" {
		t.Errorf("operationId = %v", id)
	}
}
