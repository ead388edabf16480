package openapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"
)

// The testdata/upstream-*.json files are what kube-apiserver v1.37.2
// published for testdata/crontab-crd.yaml and widget-crd.yaml (parameter
// descriptions and unrelated built-in schemas left out).

// customResources returns the served versions of a CRD file with their
// schemas in kube-openapi form, as the CRD schema compiler hands them over.
func customResources(t *testing.T, file string) []CustomResource {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var out []CustomResource
	for _, v := range crd.Spec.Versions {
		cr := CustomResource{
			GVR:        schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural},
			Kind:       crd.Spec.Names.Kind,
			ListKind:   crd.Spec.Names.ListKind,
			Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			ShortNames: crd.Spec.Names.ShortNames,
			Schema:     structuralSchema(t, v.Schema.OpenAPIV3Schema),
		}
		if v.Subresources != nil && v.Subresources.Status != nil {
			cr.Subresources = append(cr.Subresources, "status")
		}
		if v.Subresources != nil && v.Subresources.Scale != nil {
			cr.Subresources = append(cr.Subresources, "scale")
		}
		out = append(out, cr)
	}
	return out
}

func structuralSchema(t *testing.T, in *apiextensionsv1.JSONSchemaProps) *spec.Schema {
	t.Helper()
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(in, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	return s.Unfold().ToKubeOpenAPI()
}

func loadJSON(t *testing.T, file string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// normalize round-trips v through JSON so that values built in Go compare
// with values decoded from a file.
func normalize(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sampleResources(t *testing.T) []CustomResource {
	return append(customResources(t, "crontab-crd.yaml"), customResources(t, "widget-crd.yaml")...)
}

func serveCustom(t *testing.T, crs []CustomResource) (*Service, string) {
	t.Helper()
	s, err := New(testResources, "v1.37.2")
	if err != nil {
		t.Fatal(err)
	}
	s.SetCustomResources(crs)
	srv := serveService(t, s)
	return s, srv
}

func TestCustomDefinitionsMatchUpstreamV2(t *testing.T) {
	_, url := serveCustom(t, sampleResources(t))
	doc := getJSON(t, url+"/openapi/v2")
	got := doc["definitions"].(map[string]any)
	want := loadJSON(t, "upstream-v2-crds.json")["definitions"].(map[string]any)
	all := map[string]bool{}
	refs(doc, all)
	for r := range all {
		if _, ok := got[strings.TrimPrefix(r, "#/definitions/")]; !ok {
			t.Errorf("unresolved reference %s", r)
		}
	}
	for name, w := range want {
		if g := got[name]; !reflect.DeepEqual(g, w) {
			t.Errorf("definition %s:\n got  %s\n want %s", name, mustJSON(g), mustJSON(w))
		}
	}
}

func TestCustomDocumentsMatchUpstreamV3(t *testing.T) {
	_, url := serveCustom(t, sampleResources(t))
	for _, gv := range []string{"apis/stable.example.com/v1", "apis/things.example.org/v1alpha1", "apis/things.example.org/v1beta1"} {
		t.Run(gv, func(t *testing.T) {
			got := getJSON(t, url+"/openapi/v3/"+gv)
			want := loadJSON(t, "upstream-v3-"+strings.ReplaceAll(strings.TrimPrefix(gv, "apis/"), "/", "-")+".json")
			if !reflect.DeepEqual(got["info"], want["info"]) {
				t.Errorf("info = %v, want %v", got["info"], want["info"])
			}
			gotSchemas := got["components"].(map[string]any)["schemas"].(map[string]any)
			wantComponents := want["components"].(map[string]any)
			var names []string
			for n := range gotSchemas {
				names = append(names, n)
			}
			sort.Strings(names)
			if w := normalize(t, wantComponents["x-all-schema-names"]); !reflect.DeepEqual(normalize(t, names), w) {
				t.Errorf("schemas = %v\nwant %v", names, w)
			}
			for name, w := range wantComponents["schemas"].(map[string]any) {
				if g := gotSchemas[name]; !reflect.DeepEqual(g, w) {
					t.Errorf("schema %s:\n got  %s\n want %s", name, mustJSON(g), mustJSON(w))
				}
			}
			comparePathsV3(t, got["paths"].(map[string]any), want["paths"].(map[string]any))
		})
	}
}

// opSummary is what clients read of an operation: its identity,
// extensions, parameters, bodies and responses.
type opSummary struct {
	ID, Action string
	GVK        any
	Params     []string
	Body       string
	Responses  map[string]string
	Consumes   []string
}

func summarize(op map[string]any, shared []any, v2 bool) opSummary {
	s := opSummary{ID: op["operationId"].(string), Action: op["x-kubernetes-action"].(string), GVK: op["x-kubernetes-group-version-kind"], Responses: map[string]string{}}
	params, _ := op["parameters"].([]any)
	for _, p := range append(slices.Clone(shared), params...) {
		pm := p.(map[string]any)
		if pm["in"] == "body" {
			s.Body = pm["schema"].(map[string]any)["$ref"].(string)
			continue
		}
		s.Params = append(s.Params, pm["in"].(string)+":"+pm["name"].(string))
	}
	sort.Strings(s.Params)
	for code, r := range op["responses"].(map[string]any) {
		rm := r.(map[string]any)
		switch {
		case v2 && rm["schema"] != nil:
			s.Responses[code] = rm["schema"].(map[string]any)["$ref"].(string)
		case !v2 && rm["content"] != nil:
			var types []string
			for typ, c := range rm["content"].(map[string]any) {
				types = append(types, typ+"="+c.(map[string]any)["schema"].(map[string]any)["$ref"].(string))
			}
			sort.Strings(types)
			s.Responses[code] = strings.Join(types, ",")
		default:
			s.Responses[code] = ""
		}
	}
	if v2 {
		for _, c := range op["consumes"].([]any) {
			s.Consumes = append(s.Consumes, c.(string))
		}
	} else if body, ok := op["requestBody"].(map[string]any); ok {
		for typ, c := range body["content"].(map[string]any) {
			s.Consumes = append(s.Consumes, typ)
			s.Body = c.(map[string]any)["schema"].(map[string]any)["$ref"].(string)
		}
		sort.Strings(s.Consumes)
		if body["required"] == true {
			s.Body += " (required)"
		}
	}
	return s
}

func comparePaths(t *testing.T, got, want map[string]any, v2 bool) {
	t.Helper()
	for path, w := range want {
		g, ok := got[path].(map[string]any)
		if !ok {
			t.Errorf("missing path %s", path)
			continue
		}
		wm := w.(map[string]any)
		if m, wantM := methods(g), methods(wm); !slices.Equal(m, wantM) {
			t.Errorf("%s: methods %v, want %v", path, m, wantM)
			continue
		}
		gShared, _ := g["parameters"].([]any)
		wShared, _ := wm["parameters"].([]any)
		for _, m := range methods(wm) {
			gs := summarize(g[m].(map[string]any), gShared, v2)
			ws := summarize(wm[m].(map[string]any), wShared, v2)
			if !reflect.DeepEqual(normalize(t, gs), normalize(t, ws)) {
				t.Errorf("%s %s:\n got  %+v\n want %+v", m, path, gs, ws)
			}
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok && strings.Contains(path, "example.") {
			t.Errorf("unexpected path %s", path)
		}
	}
}

func comparePathsV3(t *testing.T, got, want map[string]any) { comparePaths(t, got, want, false) }

func TestCustomPathsMatchUpstreamV2(t *testing.T) {
	_, url := serveCustom(t, sampleResources(t))
	got := getJSON(t, url+"/openapi/v2")["paths"].(map[string]any)
	want := loadJSON(t, "upstream-v2-crds.json")["paths"].(map[string]any)
	comparePaths(t, got, want, true)
}

func serveService(t *testing.T, s *Service) string {
	t.Helper()
	mux := http.NewServeMux()
	if err := s.Install(mux); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}
