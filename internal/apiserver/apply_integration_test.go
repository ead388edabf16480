package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// rawResponse is a decoded answer of rawWrite.
type rawResponse struct {
	code   int
	header http.Header
	body   map[string]any
}

// rawWrite sends body to path with the given method and content type.
func rawWrite(t *testing.T, s *testserver.Server, method, path, contentType, userAgent, body string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	out := rawResponse{code: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(data, &out.body); err != nil {
		t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
	}
	return out
}

func applyYAML(t *testing.T, s *testserver.Server, path, body string) rawResponse {
	t.Helper()
	return rawWrite(t, s, http.MethodPatch, path, "application/apply-patch+yaml", "", body)
}

// managers returns "manager/operation[/subresource]" of each entry.
func managers(entries []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, e := range entries {
		s := e.Manager + "/" + string(e.Operation)
		if e.Subresource != "" {
			s += "/" + e.Subresource
		}
		out = append(out, s)
	}
	return out
}

// fieldsOf returns manager's fieldsV1 as JSON, "" when it has no entry.
func fieldsOf(entries []metav1.ManagedFieldsEntry, manager string) string {
	for _, e := range entries {
		if e.Manager == manager && e.FieldsV1 != nil {
			return string(e.FieldsV1.Raw)
		}
	}
	return ""
}

func entriesOf(t *testing.T, obj map[string]any) []metav1.ManagedFieldsEntry {
	t.Helper()
	md, _ := obj["metadata"].(map[string]any)
	raw, err := json.Marshal(md["managedFields"])
	if err != nil {
		t.Fatal(err)
	}
	var out []metav1.ManagedFieldsEntry
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

const cmPath = "/api/v1/namespaces/default/configmaps/cm1"

func TestApplyConfigMapOwnershipAndConflicts(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()

	r := applyYAML(t, s, cmPath+"?fieldManager=a", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  x: \"1\"\n  z: \"2\"\n")
	if r.code != http.StatusCreated {
		t.Fatalf("apply that creates: %d %v", r.code, r.body)
	}
	cm, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "cm1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["x"] != "1" || cm.Data["z"] != "2" {
		t.Errorf("data = %v", cm.Data)
	}
	if got := managers(cm.ManagedFields); len(got) != 1 || got[0] != "a/Apply" {
		t.Errorf("managers = %v, want [a/Apply]", got)
	}
	if got, want := fieldsOf(cm.ManagedFields, "a"), `{"f:data":{"f:x":{},"f:z":{}}}`; got != want {
		t.Errorf("a's fields = %s, want %s", got, want)
	}

	// Another applier changing a's field conflicts, with upstream's words.
	r = applyYAML(t, s, cmPath+"?fieldManager=b", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  x: \"3\"\n")
	if r.code != http.StatusConflict {
		t.Fatalf("conflicting apply: %d %v", r.code, r.body)
	}
	if got, want := r.body["message"], `Apply failed with 1 conflict: conflict with "a": .data.x`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	causes := r.body["details"].(map[string]any)["causes"].([]any)
	cause := causes[0].(map[string]any)
	if len(causes) != 1 || cause["reason"] != "FieldManagerConflict" || cause["message"] != `conflict with "a"` || cause["field"] != ".data.x" {
		t.Errorf("causes = %v", causes)
	}

	// force takes the field over.
	r = applyYAML(t, s, cmPath+"?fieldManager=b&force=true", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  x: \"3\"\n")
	if r.code != http.StatusOK {
		t.Fatalf("forced apply: %d %v", r.code, r.body)
	}
	cm, _ = s.Client.CoreV1().ConfigMaps("default").Get(ctx, "cm1", metav1.GetOptions{})
	if cm.Data["x"] != "3" {
		t.Errorf("x = %q after forced apply", cm.Data["x"])
	}
	if got, want := fieldsOf(cm.ManagedFields, "a"), `{"f:data":{"f:z":{}}}`; got != want {
		t.Errorf("a's fields after b forced = %s, want %s", got, want)
	}
	if got, want := fieldsOf(cm.ManagedFields, "b"), `{"f:data":{"f:x":{}}}`; got != want {
		t.Errorf("b's fields = %s, want %s", got, want)
	}

	// An applier dropping a field it alone owns deletes it.
	r = applyYAML(t, s, cmPath+"?fieldManager=a", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata: {}\n")
	if r.code != http.StatusOK {
		t.Fatalf("apply without z: %d %v", r.code, r.body)
	}
	cm, _ = s.Client.CoreV1().ConfigMaps("default").Get(ctx, "cm1", metav1.GetOptions{})
	if _, ok := cm.Data["z"]; ok || cm.Data["x"] != "3" {
		t.Errorf("data = %v, want z removed and b's x kept", cm.Data)
	}
}

func TestApplyRequestErrors(t *testing.T) {
	s := testserver.Start(t)
	body := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  x: \"1\"\n"

	r := applyYAML(t, s, cmPath, body)
	if r.code != http.StatusUnprocessableEntity ||
		r.body["message"] != `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch` {
		t.Errorf("apply without fieldManager: %d %v", r.code, r.body["message"])
	}

	// A field the schema does not declare: upstream's bare 500.
	r = applyYAML(t, s, cmPath+"?fieldManager=a", body+"foo: bar\n")
	want := "failed to create typed patch object (/cm1; /v1, Kind=ConfigMap): .foo: field not declared in schema"
	if r.code != http.StatusInternalServerError || r.body["message"] != want || r.body["reason"] != nil {
		t.Errorf("unknown field: %d %v, want 500 %q without reason", r.code, r.body, want)
	}

	r = applyYAML(t, s, cmPath+"?fieldManager=a", "apiVersion: v1\nkind: ConfigMap\ndata:\n  x: \"1\"\n")
	if r.code != http.StatusBadRequest ||
		r.body["message"] != "the name of the object (cm1 based on URL) was undeterminable: name must be provided" {
		t.Errorf("apply without a name: %d %v", r.code, r.body["message"])
	}

	for _, tc := range []struct {
		body, message string
		code          int
	}{
		{"apiVersion: v1\nkind: Secret\nmetadata:\n  name: cm1\n", "invalid object type: /v1, Kind=Secret", http.StatusBadRequest},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  namespace: other\n",
			"the namespace of the provided object does not match the namespace sent on the request", http.StatusBadRequest},
		{"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\n  uid: abc\n",
			`Operation cannot be fulfilled on configmaps "cm1": uid mismatch: the provided object specified uid abc, and no existing object was found`, http.StatusConflict},
		{"{bad", "error decoding patch: error converting YAML to JSON: yaml: line 1: did not find expected ',' or '}'", http.StatusBadRequest},
	} {
		r = applyYAML(t, s, cmPath+"?fieldManager=a", tc.body)
		if r.code != tc.code || r.body["message"] != tc.message {
			t.Errorf("apply %q: %d %v, want %d %q", tc.body, r.code, r.body["message"], tc.code, tc.message)
		}
	}

	// Duplicate fields warn by default and fail with Strict.
	dup := body + "  x: \"2\"\n"
	r = applyYAML(t, s, cmPath+"?fieldManager=a&fieldValidation=Strict", dup)
	if r.code != http.StatusBadRequest || !strings.HasPrefix(r.body["message"].(string), "error strict decoding patch: ") {
		t.Errorf("strict duplicate: %d %v", r.code, r.body["message"])
	}
	r = applyYAML(t, s, cmPath+"?fieldManager=a", dup)
	if r.code != http.StatusCreated || r.header.Get("Warning") != `299 - "line 7: key \"x\" already set in map"` {
		t.Errorf("duplicate with Warn: %d %q", r.code, r.header.Values("Warning"))
	}
}

func TestApplyDryRunStoresNothing(t *testing.T) {
	s := testserver.Start(t)
	r := applyYAML(t, s, cmPath+"?fieldManager=a&dryRun=All", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  x: \"1\"\n")
	if r.code != http.StatusCreated || r.body["data"].(map[string]any)["x"] != "1" {
		t.Fatalf("dry-run apply: %d %v", r.code, r.body)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Get(context.Background(), "cm1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run apply stored the object: %v", err)
	}
}

func TestUpdatesRecordManagedFields(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()

	r := rawWrite(t, s, http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json", "foo/1.0 (bar)",
		`{"metadata":{"name":"cm1","labels":{"a":"b"}},"data":{"k":"v"}}`)
	if r.code != http.StatusCreated {
		t.Fatalf("create: %d %v", r.code, r.body)
	}
	entries := entriesOf(t, r.body)
	if got := managers(entries); len(got) != 1 || got[0] != "foo/Update" {
		t.Fatalf("managers after create = %v, want [foo/Update]", got)
	}
	if got, want := fieldsOf(entries, "foo"), `{"f:data":{".":{},"f:k":{}},"f:metadata":{"f:labels":{".":{},"f:a":{}}}}`; got != want {
		t.Errorf("creator's fields = %s, want %s", got, want)
	}

	r = rawWrite(t, s, http.MethodPatch, cmPath+"?fieldManager=m2", "application/merge-patch+json", "", `{"data":{"k2":"v"}}`)
	if r.code != http.StatusOK {
		t.Fatalf("merge patch: %d %v", r.code, r.body)
	}
	entries = entriesOf(t, r.body)
	if got, want := fieldsOf(entries, "m2"), `{"f:data":{"f:k2":{}}}`; got != want {
		t.Errorf("patcher's fields = %s, want %s", got, want)
	}

	cm, err := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "cm1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["k3"] = "v"
	cm, err = s.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "upd"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(managers(cm.ManagedFields), ","); got != "foo/Update,m2/Update,upd/Update" {
		t.Errorf("managers = %s", got)
	}
	if got, want := fieldsOf(cm.ManagedFields, "upd"), `{"f:data":{"f:k3":{}}}`; got != want {
		t.Errorf("updater's fields = %s, want %s", got, want)
	}

	// An update that changes nothing writes nothing.
	again, err := s.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != cm.ResourceVersion || len(again.ManagedFields) != 3 {
		t.Errorf("no-op update: resourceVersion %s -> %s, managers %v", cm.ResourceVersion, again.ResourceVersion, managers(again.ManagedFields))
	}

	// An invalid fieldManager is refused as upstream refuses it.
	_, err = s.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "bad\x01"})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "UpdateOptions") {
		t.Errorf("unprintable fieldManager: %v", err)
	}
}

// kubectl apply --server-side after client-side apply takes over the
// fields of the last-applied annotation without conflicts.
func TestKubectlClientSideToServerSideApply(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	lastApplied := `{"apiVersion":"v1","data":{"x":"1"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"cm1","namespace":"default"}}`
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cm1", Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: lastApplied}},
		Data:       map[string]string{"x": "1"},
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"}); err != nil {
		t.Fatal(err)
	}
	r := applyYAML(t, s, cmPath+"?fieldManager=kubectl", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  x: \"2\"\n")
	if r.code != http.StatusOK {
		t.Fatalf("server-side apply after client-side apply: %d %v", r.code, r.body)
	}
	got, _ := s.Client.CoreV1().ConfigMaps("default").Get(ctx, "cm1", metav1.GetOptions{})
	if got.Data["x"] != "2" {
		t.Errorf("x = %q", got.Data["x"])
	}
	if fields := fieldsOf(got.ManagedFields, "kubectl"); !strings.Contains(fields, `"f:x"`) {
		t.Errorf("kubectl's fields = %s, want f:data.f:x", fields)
	}

	// Another applier still conflicts with kubectl.
	r = applyYAML(t, s, cmPath+"?fieldManager=other", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  x: \"3\"\n")
	if r.code != http.StatusConflict {
		t.Errorf("apply by another manager: %d %v", r.code, r.body["message"])
	}
}

// gadgetCRD has spec.parts, a list of maps keyed by name, and a status
// subresource.
func gadgetCRD() *apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	parts := apiextensionsv1.JSONSchemaProps{
		Type: "array", XListType: ptr.To("map"), XListMapKeys: []string{"name"},
		Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
			Type: "object", Required: []string{"name"},
			Properties: map[string]apiextensionsv1.JSONSchemaProps{"name": str, "color": str},
		}},
	}
	schemaProps := &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"spec":   {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"parts": parts, "size": {Type: "integer"}}},
		"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"phase": str}},
	}}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gadgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema:       &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: schemaProps},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}

func TestApplyCustomResource(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	createEstablished(t, s, gadgetCRD())
	gvr := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "gadgets"}
	client := dynamic.NewForConfigOrDie(s.Config).Resource(gvr).Namespace("default")
	path := "/apis/example.com/v1/namespaces/default/gadgets/g1"
	head := "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g1\n"

	r := applyYAML(t, s, path+"?fieldManager=a", head+"spec:\n  size: 1\n  parts:\n  - name: p1\n    color: red\n")
	if r.code != http.StatusCreated {
		t.Fatalf("apply that creates: %d %v", r.code, r.body)
	}
	// A second applier adds its own list item: the list merges by key.
	r = applyYAML(t, s, path+"?fieldManager=b", head+"spec:\n  parts:\n  - name: p2\n    color: blue\n")
	if r.code != http.StatusOK {
		t.Fatalf("second applier: %d %v", r.code, r.body)
	}
	got, err := client.Get(ctx, "g1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts, _, _ := unstructured.NestedSlice(got.Object, "spec", "parts")
	if len(parts) != 2 || parts[0].(map[string]any)["name"] != "p1" || parts[1].(map[string]any)["name"] != "p2" {
		t.Errorf("parts = %v, want p1 and p2", parts)
	}
	if got, want := fieldsOf(got.GetManagedFields(), "b"), `{"f:spec":{"f:parts":{"k:{\"name\":\"p2\"}":{".":{},"f:color":{},"f:name":{}}}}}`; got != want {
		t.Errorf("b's fields = %s, want %s", got, want)
	}

	// Changing a's item conflicts.
	r = applyYAML(t, s, path+"?fieldManager=b", head+"spec:\n  parts:\n  - name: p1\n    color: green\n")
	if r.code != http.StatusConflict {
		t.Errorf("changing a's item: %d %v", r.code, r.body["message"])
	}

	// Status through /status: recorded for the subresource; the main
	// resource ignores status, and /status ignores spec.
	r = applyYAML(t, s, path+"/status?fieldManager=ctl", head+"spec:\n  size: 9\nstatus:\n  phase: Ready\n")
	if r.code != http.StatusOK {
		t.Fatalf("apply to /status: %d %v", r.code, r.body)
	}
	got, _ = client.Get(ctx, "g1", metav1.GetOptions{})
	if phase, _, _ := unstructured.NestedString(got.Object, "status", "phase"); phase != "Ready" {
		t.Errorf("status.phase = %q", phase)
	}
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 1 {
		t.Errorf("spec.size = %d, want 1: /status must not change spec", size)
	}
	var status *metav1.ManagedFieldsEntry
	for i, e := range got.GetManagedFields() {
		if e.Manager == "ctl" {
			status = &got.GetManagedFields()[i]
		}
	}
	if status == nil || status.Subresource != "status" || string(status.FieldsV1.Raw) != `{"f:status":{"f:phase":{}}}` {
		t.Errorf("status applier's entry = %+v", status)
	}
	r = applyYAML(t, s, path+"?fieldManager=a", head+"spec:\n  size: 1\n  parts:\n  - name: p1\n    color: red\nstatus:\n  phase: Lost\n")
	if r.code != http.StatusOK {
		t.Fatalf("main resource apply with status: %d %v", r.code, r.body)
	}
	got, _ = client.Get(ctx, "g1", metav1.GetOptions{})
	if phase, _, _ := unstructured.NestedString(got.Object, "status", "phase"); phase != "Ready" {
		t.Errorf("status.phase = %q after an apply to the main resource", phase)
	}

	// An apply to /status does not create.
	r = applyYAML(t, s, "/apis/example.com/v1/namespaces/default/gadgets/g2/status?fieldManager=ctl",
		"apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g2\nstatus:\n  phase: Ready\n")
	if r.code != http.StatusNotFound {
		t.Errorf("apply to /status of a missing object: %d %v", r.code, r.body["message"])
	}
}

// webDeployment is the apply configuration of Deployment web, with extra
// lines (indented under spec) before its selector.
func webDeployment(extraSpec string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
` + extraSpec + `  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx
`
}

func TestApplyDeploymentStatus(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	path := "/apis/apps/v1/namespaces/default/deployments/web"
	dep := webDeployment("")
	if r := applyYAML(t, s, path+"?fieldManager=a", dep); r.code != http.StatusCreated {
		t.Fatalf("apply deployment: %d %v", r.code, r.body)
	}
	r := applyYAML(t, s, path+"/status?fieldManager=ctl", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nstatus:\n  observedGeneration: 1\n")
	if r.code != http.StatusOK {
		t.Fatalf("apply status: %d %v", r.code, r.body)
	}
	d, err := s.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.ObservedGeneration != 1 {
		t.Errorf("observedGeneration = %d", d.Status.ObservedGeneration)
	}
	if got := strings.Join(managers(d.ManagedFields), ","); got != "a/Apply,ctl/Apply/status" {
		t.Errorf("managers = %s", got)
	}
	// Replicas were defaulted; a scale through a patch of another
	// manager conflicts only with the applier that set them... which a did
	// not: defaults belong to nobody.
	patch := []byte(`{"spec":{"replicas":3}}`)
	if _, err := s.Client.AppsV1().Deployments("default").Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "scaler"}); err != nil {
		t.Fatal(err)
	}
	r = applyYAML(t, s, path+"?fieldManager=a", dep)
	if r.code != http.StatusOK {
		t.Errorf("re-apply without replicas: %d %v", r.code, r.body["message"])
	}
	d, _ = s.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %d, want the scaler's 3 kept", *d.Spec.Replicas)
	}
}

// Warnings of admission policies reach the client as Warning headers on
// every write.
func TestAdmissionWarningsReachTheClient(t *testing.T) {
	s := startRBACServer(t)
	ctx := context.Background()
	admin := s.ClientWithToken("admin")
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "warn-all"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "policy says hello"}},
		},
	}
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "warn-all"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: "warn-all", ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn},
		},
	}
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	send := func(method, path, contentType, body string) http.Header {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer admin")
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
		return resp.Header
	}
	warned := func(h http.Header) bool {
		for _, w := range h.Values("Warning") {
			if strings.HasPrefix(w, "299 - ") && strings.Contains(w, "policy says hello") {
				return true
			}
		}
		return false
	}
	var name string
	for n := 0; ; n++ {
		name = "w" + strconv.Itoa(n)
		if warned(send(http.MethodPost, "/api/v1/namespaces/default/configmaps", "application/json", `{"metadata":{"name":"`+name+`"}}`)) {
			break
		}
		if n == 200 {
			t.Fatal("creates never warned")
		}
		time.Sleep(50 * time.Millisecond) // the policy is picked up from the watch cache
	}
	path := "/api/v1/namespaces/default/configmaps/" + name
	if h := send(http.MethodPut, path, "application/json", `{"metadata":{"name":"`+name+`"},"data":{"a":"b"}}`); !warned(h) {
		t.Errorf("update: no warning in %q", h.Values("Warning"))
	}
	if h := send(http.MethodPatch, path, "application/merge-patch+json", `{"data":{"c":"d"}}`); !warned(h) {
		t.Errorf("patch: no warning in %q", h.Values("Warning"))
	}
	if h := send(http.MethodPatch, path+"?fieldManager=x", "application/apply-patch+yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "+name+"\ndata:\n  e: f\n"); !warned(h) {
		t.Errorf("apply: no warning in %q", h.Values("Warning"))
	}
	if h := send(http.MethodDelete, path, "application/json", ""); !warned(h) {
		t.Errorf("delete: no warning in %q", h.Values("Warning"))
	}
}

// autoscaling/v1 and v2 HorizontalPodAutoscalers are one object: a field
// set through v1 is owned, and conflicts, under v2.
func TestApplyHPAAcrossVersions(t *testing.T) {
	s := testserver.Start(t)
	v2 := "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h"
	hpa := func(max int) string {
		return "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\nspec:\n  maxReplicas: " + strconv.Itoa(max) +
			"\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n"
	}
	if r := applyYAML(t, s, v2+"?fieldManager=a", hpa(5)); r.code != http.StatusCreated {
		t.Fatalf("apply v2: %d %v", r.code, r.body)
	}
	r := rawWrite(t, s, http.MethodPatch, "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/h?fieldManager=b",
		"application/merge-patch+json", "", `{"spec":{"maxReplicas":7}}`)
	if r.code != http.StatusOK {
		t.Fatalf("v1 patch: %d %v", r.code, r.body)
	}
	r = applyYAML(t, s, v2+"?fieldManager=a", hpa(9))
	if r.code != http.StatusConflict || r.body["message"] != `Apply failed with 1 conflict: conflict with "b" using autoscaling/v1: .spec.maxReplicas` {
		t.Errorf("apply over a v1 change: %d %v", r.code, r.body["message"])
	}
}

// A write through /scale takes ownership of the replicas in the parent's
// managedFields, recorded with subresource scale as upstream does, so an
// applier who set them conflicts with the scaler afterwards.
func TestScaleRecordsManagedFields(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	path := "/apis/apps/v1/namespaces/default/deployments/web"
	dep := webDeployment("  replicas: 2\n")
	if r := applyYAML(t, s, path+"?fieldManager=a", dep); r.code != http.StatusCreated {
		t.Fatalf("apply deployment: %d %v", r.code, r.body)
	}
	scale, err := s.Client.AppsV1().Deployments("default").GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 5
	if _, err := s.Client.AppsV1().Deployments("default").UpdateScale(ctx, "web", scale, metav1.UpdateOptions{FieldManager: "scaler"}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(managers(d.ManagedFields), ","); got != "a/Apply,scaler/Update/scale" {
		t.Fatalf("managers = %s", got)
	}
	if got := fieldsOf(d.ManagedFields, "scaler"); got != `{"f:spec":{"f:replicas":{}}}` {
		t.Errorf("scaler owns %s, want spec.replicas alone", got)
	}
	if strings.Contains(fieldsOf(d.ManagedFields, "a"), "f:replicas") {
		t.Errorf("the applier still owns the replicas: %s", fieldsOf(d.ManagedFields, "a"))
	}
	r := applyYAML(t, s, path+"?fieldManager=a", dep)
	if r.code != http.StatusConflict || !strings.Contains(fmt.Sprint(r.body["message"]), `conflict with "scaler" with subresource "scale"`) {
		t.Errorf("re-apply of replicas 2: %d %v, want a conflict with the scaler", r.code, r.body["message"])
	}
}
