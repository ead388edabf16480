package cluster

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
)

// TestOpenAPIDescribesEveryServedResource builds the v2 document from the
// real resource table: every served kind, create-only reviews included,
// must have a path and a schema, or kubectl explain and apply miss it.
func TestOpenAPIDescribesEveryServedResource(t *testing.T) {
	svc, err := openapi.New(openapiInfo(apis.All()), KubernetesVersion)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if err := svc.Install(mux); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi/v2", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi/v2: %d %s", rec.Code, rec.Body)
	}
	var doc struct {
		Paths       map[string]map[string]json.RawMessage
		Definitions map[string]struct {
			GVK []map[string]string `json:"x-kubernetes-group-version-kind"`
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, d := range doc.Definitions {
		for _, g := range d.GVK {
			kinds[g["group"]+"/"+g["version"]+"/"+g["kind"]] = true
		}
	}
	for _, r := range apis.All() {
		gvk := r.GVR.Group + "/" + r.GVR.Version + "/" + r.Kind
		if !kinds[gvk] {
			t.Errorf("no definition for %s", gvk)
		}
		path := "/apis/" + r.GVR.Group + "/" + r.GVR.Version
		if r.GVR.Group == "" {
			path = "/api/" + r.GVR.Version
		}
		if r.Namespaced {
			path += "/namespaces/{namespace}"
		}
		path += "/" + r.GVR.Resource
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("no collection path %s", path)
			continue
		}
		delete(ops, "parameters")
		if _, post := ops["post"]; r.CreateOnly && (!post || len(ops) != 1) {
			t.Errorf("%s: create-only resource has operations %v, want only post", path, keys(ops))
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
