package openapi

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"
	protomodels "k8s.io/kube-openapi/pkg/util/proto"
)

func TestOperationIDsAndTagsFollowUpstream(t *testing.T) {
	// Values from kube-apiserver v1.37.2's /openapi/v2.
	ids := []struct {
		verb  string
		gv    schema.GroupVersion
		rest  string
		want  string
		wantT string
	}{
		{"deletecollection", schema.GroupVersion{Group: "apps", Version: "v1"}, "NamespacedDeployment", "deleteAppsV1CollectionNamespacedDeployment", "apps_v1"},
		{"list", schema.GroupVersion{Group: "rbac.authorization.k8s.io", Version: "v1"}, "NamespacedRole", "listRbacAuthorizationV1NamespacedRole", "rbacAuthorization_v1"},
		{"read", schema.GroupVersion{Version: "v1"}, "NamespacedPodStatus", "readCoreV1NamespacedPodStatus", "core_v1"},
		{"list", schema.GroupVersion{Group: "apps", Version: "v1"}, "DeploymentForAllNamespaces", "listAppsV1DeploymentForAllNamespaces", "apps_v1"},
		{"patch", schema.GroupVersion{Group: "flowcontrol.apiserver.k8s.io", Version: "v1"}, "FlowSchemaStatus", "patchFlowcontrolApiserverV1FlowSchemaStatus", "flowcontrolApiserver_v1"},
		{"list", schema.GroupVersion{Group: "things.example.org", Version: "v1alpha1"}, "Widget", "listThingsExampleOrgV1alpha1Widget", "thingsExampleOrg_v1alpha1"},
	}
	for _, c := range ids {
		if got := operationID(c.verb, c.gv, c.rest); got != c.want {
			t.Errorf("operationID(%s, %s, %s) = %s, want %s", c.verb, c.gv, c.rest, got, c.want)
		}
		if got := operationTag(c.gv); got != c.wantT {
			t.Errorf("operationTag(%s) = %s, want %s", c.gv, got, c.wantT)
		}
	}
}

// The compiler may hand over schemas that already carry apiVersion, kind
// and metadata, with references in either document's form; the result
// must not depend on it.
func TestCustomSchemaWithMetaAlreadySet(t *testing.T) {
	crs := customResources(t, "crontab-crd.yaml")
	tm := (&Service{defs: mustNew(t).defs}).typeMetaProps()
	for _, cr := range crs {
		withMeta := cr
		sc := cr.schemaV3(tm)
		delete(sc.Extensions, extGVK)
		// As v2 references, to check they are rewritten.
		copied := copySchema(&sc, true)
		withMeta.Schema = &copied
		if got, want := withMeta.schemaV3(tm), cr.schemaV3(tm); !reflect.DeepEqual(normalize(t, got), normalize(t, want)) {
			t.Errorf("v3 differs:\n got  %s\n want %s", mustJSON(got), mustJSON(want))
		}
		if got, want := withMeta.schemaV2(tm), cr.schemaV2(tm); !reflect.DeepEqual(normalize(t, got), normalize(t, want)) {
			t.Errorf("v2 differs:\n got  %s\n want %s", mustJSON(got), mustJSON(want))
		}
	}
}

func mustNew(t *testing.T) *Service {
	t.Helper()
	s, err := New(testResources, "v1.37.2")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCustomResourceWithoutSchemaIsAnyObject(t *testing.T) {
	cr := CustomResource{GVR: schema.GroupVersionResource{Group: "a.example.com", Version: "v1", Resource: "things"}, Kind: "Thing"}
	_, url := serveCustom(t, []CustomResource{cr})
	want := `{"type":"object","x-kubernetes-group-version-kind":[{"group":"a.example.com","kind":"Thing","version":"v1"}]}`
	if got := mustJSON(getJSON(t, url+"/openapi/v2")["definitions"].(map[string]any)["com.example.a.v1.Thing"]); got != want {
		t.Errorf("v2 schema = %s, want %s", got, want)
	}
	doc := getJSON(t, url+"/openapi/v3/apis/a.example.com/v1")
	if got := mustJSON(doc["components"].(map[string]any)["schemas"].(map[string]any)["com.example.a.v1.Thing"]); got != want {
		t.Errorf("v3 schema = %s, want %s", got, want)
	}
	list := mustJSON(doc["components"].(map[string]any)["schemas"].(map[string]any)["com.example.a.v1.ThingList"])
	if !strings.Contains(list, `"kind":"ThingList"`) {
		t.Errorf("list kind defaults to ThingList: %s", list)
	}
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get returns the status, ETag and body of url, sending etag as
// If-None-Match when set.
func get(t *testing.T, url, etag string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Etag"), string(body)
}

func v3Index(t *testing.T, url string) map[string]string {
	out := map[string]string{}
	for gv, e := range getJSON(t, url+"/openapi/v3")["paths"].(map[string]any) {
		out[gv] = e.(map[string]any)["serverRelativeURL"].(string)
	}
	return out
}

func TestSetCustomResourcesUpdatesDocuments(t *testing.T) {
	s := mustNew(t)
	url := serveService(t, s)
	code, builtinTag, _ := get(t, url+"/openapi/v2", "")
	if code != http.StatusOK || builtinTag == "" {
		t.Fatalf("GET /openapi/v2: %d, ETag %q", code, builtinTag)
	}
	before := v3Index(t, url)

	crs := customResources(t, "crontab-crd.yaml")
	s.SetCustomResources(crs)
	code, tag, body := get(t, url+"/openapi/v2", builtinTag)
	if code != http.StatusOK || tag == builtinTag || !strings.Contains(body, "com.example.stable.v1.CronTab") {
		t.Fatalf("after adding CronTab: %d, ETag changed %v, has CronTab %v", code, tag != builtinTag, strings.Contains(body, "com.example.stable.v1.CronTab"))
	}
	if code, _, _ := get(t, url+"/openapi/v2", tag); code != http.StatusNotModified {
		t.Errorf("If-None-Match with the current ETag: %d, want 304", code)
	}
	index := v3Index(t, url)
	cronURL, ok := index["apis/stable.example.com/v1"]
	if !ok {
		t.Fatalf("v3 index lacks apis/stable.example.com/v1: %v", index)
	}
	for gv, u := range before {
		if index[gv] != u {
			t.Errorf("built-in %s changed: %s -> %s", gv, u, index[gv])
		}
	}
	if code, _, _ := get(t, url+cronURL, ""); code != http.StatusOK {
		t.Fatalf("GET %s: %d", cronURL, code)
	}

	// The same resources again change nothing; a schema change changes
	// the group-version's hash.
	s.SetCustomResources(crs)
	if got := v3Index(t, url)["apis/stable.example.com/v1"]; got != cronURL {
		t.Errorf("unchanged resources moved the hash: %s -> %s", cronURL, got)
	}
	changed := customResources(t, "crontab-crd.yaml")
	specProps := changed[0].Schema.Properties["spec"]
	image := specProps.Properties["image"]
	image.Description = "the image to run"
	specProps.Properties["image"] = image
	changed[0].Schema.Properties["spec"] = specProps
	s.SetCustomResources(changed)
	newURL := v3Index(t, url)["apis/stable.example.com/v1"]
	if newURL == cronURL {
		t.Error("changing the schema kept the v3 hash")
	}
	if _, _, body := get(t, url+newURL, ""); !strings.Contains(body, "the image to run") {
		t.Error("the v3 document does not have the new schema")
	}
	if code, _, _ := get(t, url+cronURL, ""); code != http.StatusMovedPermanently {
		t.Errorf("old hash: %d, want 301 to the new one", code)
	}

	s.SetCustomResources(nil)
	if _, ok := v3Index(t, url)["apis/stable.example.com/v1"]; ok {
		t.Error("removed group-version still listed")
	}
	if code, tag, body := get(t, url+"/openapi/v2", ""); code != http.StatusOK || strings.Contains(body, "CronTab") || tag != builtinTag {
		t.Errorf("after removal: %d, still has CronTab %v, ETag back to built-in %v", code, strings.Contains(body, "CronTab"), tag == builtinTag)
	}
}

func TestSetCustomResourcesBeforeInstall(t *testing.T) {
	s := mustNew(t)
	s.SetCustomResources(customResources(t, "widget-crd.yaml"))
	url := serveService(t, s)
	index := v3Index(t, url)
	for _, gv := range []string{"apis/things.example.org/v1alpha1", "apis/things.example.org/v1beta1", "apis/apps/v1"} {
		if _, ok := index[gv]; !ok {
			t.Errorf("index lacks %s", gv)
		}
	}
}

func TestSetCustomResourcesWhileServing(t *testing.T) {
	s := mustNew(t)
	url := serveService(t, s)
	sets := [][]CustomResource{customResources(t, "crontab-crd.yaml"), customResources(t, "widget-crd.yaml"), nil}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 5 {
				if i == 0 {
					s.SetCustomResources(sets[j%len(sets)])
					continue
				}
				path := "/openapi/v2"
				if i%2 == 0 {
					path = "/openapi/v3/apis/stable.example.com/v1"
				}
				resp, err := http.Get(url + path)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					t.Errorf("GET %s: %d", path, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
}

// kubectl reads /openapi/v2 as protobuf into kube-openapi's proto models
// for client-side validation; every custom schema must survive that.
func TestCustomV2ReadsAsKubectlModels(t *testing.T) {
	_, url := serveCustom(t, sampleResources(t))
	req, _ := http.NewRequest(http.MethodGet, url+"/openapi/v2", nil)
	req.Header.Set("Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi/v2 as protobuf: %d", resp.StatusCode)
	}
	var doc openapi_v2.Document
	if err := proto.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	models, err := protomodels.NewOpenAPIData(&doc)
	if err != nil {
		t.Fatalf("kubectl's model parser rejects the document: %v", err)
	}
	kind, ok := models.LookupModel("com.example.stable.v1.CronTab").(*protomodels.Kind)
	if !ok {
		t.Fatal("no CronTab kind model")
	}
	if _, ok := kind.Fields["spec"]; !ok {
		t.Errorf("CronTab model lacks spec: %v", kind.Keys())
	}
	if _, ok := kind.Fields["metadata"].(protomodels.Reference); !ok {
		t.Errorf("CronTab metadata is not a reference to ObjectMeta: %T", kind.Fields["metadata"])
	}
}
