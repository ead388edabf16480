package apiserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

var widgetsV1 = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

// widgetCRD is a namespaced CRD with two versions (v1 stored), status and
// scale subresources, a printer column and a selectable field.
func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	schemaProps := &apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"replicas": {Type: "integer", Minimum: ptr.To(0.0)},
				"color":    {Type: "string"},
				"selector": {Type: "string"},
			}},
			"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"replicas": {Type: "integer"},
				"phase":    {Type: "string"},
			}},
		},
	}
	version := func(name string, storage bool) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{
			Name: name, Served: true, Storage: storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: schemaProps.DeepCopy()},
			Subresources: &apiextensionsv1.CustomResourceSubresources{
				Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
				Scale: &apiextensionsv1.CustomResourceSubresourceScale{
					SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptr.To(".spec.selector"),
				},
			},
			AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Color", Type: "string", JSONPath: ".spec.color"}},
			SelectableFields:         []apiextensionsv1.SelectableField{{JSONPath: ".spec.color"}},
		}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList",
				ShortNames: []string{"wd"}, Categories: []string{"all"},
			},
			Scope:    apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{version("v1", true), version("v1beta1", false)},
		},
	}
}

func widget(name, color string, replicas int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": name, "labels": map[string]any{"color": color}},
		"spec":     map[string]any{"color": color, "replicas": replicas, "selector": "app=" + name},
	}}
}

// createEstablished creates crd and waits until it is Established and
// its resource answers; both must happen within a second, as upstream.
func createEstablished(t *testing.T, s *testserver.Server, crd *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	ctx := context.Background()
	ext := apiextclient.NewForConfigOrDie(s.Config)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(s.Config)
	gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: crd.Spec.Versions[0].Name, Resource: crd.Spec.Names.Plural}
	deadline := time.Now().Add(time.Second)
	for {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		established := false
		for _, c := range got.Status.Conditions {
			established = established || (c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue)
		}
		var lerr error
		if established {
			_, lerr = dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		}
		if established && lerr == nil {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not served within a second: conditions %+v, list: %v", crd.Name, got.Status.Conditions, lerr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rawGet(t *testing.T, url, accept string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestCustomResourceDefinitionServesItsKind(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	crd := createEstablished(t, s, widgetCRD())

	if got := crd.Status.AcceptedNames; got.Plural != "widgets" || got.Kind != "Widget" || len(got.ShortNames) != 1 {
		t.Errorf("acceptedNames = %+v", got)
	}
	if len(crd.Status.StoredVersions) != 1 || crd.Status.StoredVersions[0] != "v1" {
		t.Errorf("storedVersions = %v, want [v1]", crd.Status.StoredVersions)
	}
	if crd.Finalizers != nil {
		t.Errorf("a new CRD has finalizers %v", crd.Finalizers)
	}

	// Discovery: legacy and aggregated, with upstream's verbs and subresources.
	rl, err := s.Client.Discovery().ServerResourcesForGroupVersion("example.com/v1")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]metav1.APIResource{}
	for _, r := range rl.APIResources {
		names[r.Name] = r
	}
	if w := names["widgets"]; w.Kind != "Widget" || !w.Namespaced || len(w.ShortNames) != 1 || w.Categories[0] != "all" || len(w.Verbs) != 8 || w.StorageVersionHash == "" {
		t.Errorf("widgets in discovery = %+v", w)
	}
	if sc := names["widgets/scale"]; sc.Group != "autoscaling" || sc.Kind != "Scale" {
		t.Errorf("widgets/scale in discovery = %+v", sc)
	}
	if _, ok := names["widgets/status"]; !ok {
		t.Errorf("no widgets/status in discovery: %v", names)
	}
	groups, err := s.Client.Discovery().ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	var found *metav1.APIGroup
	for i, g := range groups.Groups {
		if g.Name == "example.com" {
			found = &groups.Groups[i]
			if i < len(groups.Groups)-2 && groups.Groups[i+1].Name != "metrics.k8s.io" {
				t.Errorf("custom group is not after the built-in groups: followed by %s", groups.Groups[i+1].Name)
			}
		}
	}
	if found == nil || found.PreferredVersion.Version != "v1" || len(found.Versions) != 2 || found.Versions[1].Version != "v1beta1" {
		t.Fatalf("example.com in /apis = %+v", found)
	}
	code, body, hdr := rawGet(t, s.URL+"/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
	if code != 200 || !strings.Contains(hdr.Get("Content-Type"), "APIGroupDiscoveryList") || !strings.Contains(body, `"resource":"widgets"`) {
		t.Errorf("aggregated /apis: %d %.300s", code, body)
	}
	if code, body, _ := rawGet(t, s.URL+"/apis/example.com", ""); code != 200 || !strings.Contains(body, `"preferredVersion":{"groupVersion":"example.com/v1"`) {
		t.Errorf("/apis/example.com: %d %s", code, body)
	}

	dyn := dynamic.NewForConfigOrDie(s.Config)
	widgets := dyn.Resource(widgetsV1).Namespace("default")
	red, err := widgets.Create(ctx, widget("red", "red", 1), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if red.GetGeneration() != 1 || red.GetUID() == "" || red.GetResourceVersion() == "" {
		t.Errorf("created widget metadata = %+v", red.Object["metadata"])
	}
	if _, err := widgets.Create(ctx, widget("blue", "blue", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Stored as JSON under upstream's key.
	resp, err := s.Etcd.Client.Get(ctx, "/registry/example.com/widgets/default/red")
	if err != nil || len(resp.Kvs) != 1 || !json.Valid(resp.Kvs[0].Value) || !strings.Contains(string(resp.Kvs[0].Value), `"apiVersion":"example.com/v1"`) {
		t.Fatalf("stored widget: %v %v", resp, err)
	}

	// The other version reads the same object with its own apiVersion.
	v1Obj, err := dyn.Resource(widgetsV1.GroupVersion().WithResource("widgets")).Namespace("default").Get(ctx, "red", metav1.GetOptions{})
	if err != nil || v1Obj.GetAPIVersion() != "example.com/v1" {
		t.Fatalf("v1 get: %v %v", v1Obj, err)
	}
	var beta *unstructured.Unstructured
	betaGVR := schema.GroupVersionResource{Group: "example.com", Version: "v1beta1", Resource: "widgets"}
	if beta, err = dyn.Resource(betaGVR).Namespace("default").Get(ctx, "red", metav1.GetOptions{}); err != nil || beta.GetAPIVersion() != "example.com/v1beta1" {
		t.Fatalf("v1beta1 get: %v %v", beta, err)
	}

	// Selectors and pagination.
	l, err := widgets.List(ctx, metav1.ListOptions{LabelSelector: "color=blue"})
	if err != nil || len(l.Items) != 1 || l.Items[0].GetName() != "blue" {
		t.Fatalf("label selector: %v %v", l, err)
	}
	l, err = widgets.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=red"})
	if err != nil || len(l.Items) != 1 || l.Items[0].GetName() != "red" {
		t.Fatalf("field selector: %v %v", l, err)
	}
	if _, err = widgets.List(ctx, metav1.ListOptions{FieldSelector: "spec.nothing=x"}); !apierrors.IsBadRequest(err) {
		t.Errorf("unknown field selector: %v", err)
	}
	page, err := widgets.List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(page.Items) != 1 || page.GetContinue() == "" {
		t.Fatalf("first page: %v %v", page, err)
	}
	page2, err := widgets.List(ctx, metav1.ListOptions{Limit: 1, Continue: page.GetContinue()})
	if err != nil || len(page2.Items) != 1 || page2.Items[0].GetName() == page.Items[0].GetName() {
		t.Fatalf("second page: %v %v", page2, err)
	}
	all, err := dyn.Resource(widgetsV1).List(ctx, metav1.ListOptions{})
	if err != nil || len(all.Items) != 2 || all.GetKind() != "WidgetList" {
		t.Fatalf("list across namespaces: %v %v", all, err)
	}

	// Watch from the list's revision sees a new object.
	w, err := widgets.Watch(ctx, metav1.ListOptions{ResourceVersion: all.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := widgets.Create(ctx, widget("green", "green", 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ev.Type != watch.Added || ev.Object.(*unstructured.Unstructured).GetName() != "green" {
			t.Errorf("watch event = %v %v", ev.Type, ev.Object)
		}
	case <-time.After(5 * time.Second):
		t.Error("no watch event")
	}
	w.Stop()

	// Protobuf is not served for custom objects; strategic merge patch is refused.
	if code, body, _ := rawGet(t, s.URL+"/apis/example.com/v1/namespaces/default/widgets/red", "application/vnd.kubernetes.protobuf"); code != http.StatusNotAcceptable {
		t.Errorf("protobuf get: %d %s", code, body)
	}
	if code, body, _ := rawGet(t, s.URL+"/apis/example.com/v1/namespaces/default/widgets/red", "application/vnd.kubernetes.protobuf,application/json"); code != 200 || !strings.Contains(body, `"kind":"Widget"`) {
		t.Errorf("protobuf-or-json get: %d %s", code, body)
	}
	if _, err := widgets.Patch(ctx, "red", types.StrategicMergePatchType, []byte(`{"spec":{"color":"pink"}}`), metav1.PatchOptions{}); err == nil || apierrors.ReasonForError(err) != metav1.StatusReasonUnsupportedMediaType {
		t.Errorf("strategic merge patch: %v", err)
	}
	patched, err := widgets.Patch(ctx, "red", types.MergePatchType, []byte(`{"spec":{"color":"pink"},"status":{"phase":"Ignored"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _ := unstructured.NestedString(patched.Object, "spec", "color"); c != "pink" || patched.GetGeneration() != 2 {
		t.Errorf("merge patch: color %q generation %d", c, patched.GetGeneration())
	}
	if _, ok := patched.Object["status"]; ok {
		t.Errorf("the main resource changed status: %v", patched.Object["status"])
	}
	if _, err := widgets.Patch(ctx, "red", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/color","value":"red"}]`), metav1.PatchOptions{}); err != nil {
		t.Errorf("json patch: %v", err)
	}

	// The status subresource changes status only, without a new generation.
	cur, _ := widgets.Get(ctx, "red", metav1.GetOptions{})
	cur.Object["status"] = map[string]any{"phase": "Ready", "replicas": int64(1)}
	_ = unstructured.SetNestedField(cur.Object, "ignored", "spec", "color")
	st, err := widgets.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedString(st.Object, "status", "phase"); p != "Ready" {
		t.Errorf("status after /status update: %v", st.Object["status"])
	}
	if c, _, _ := unstructured.NestedString(st.Object, "spec", "color"); c != "red" || st.GetGeneration() != cur.GetGeneration() {
		t.Errorf("/status changed spec: color %q generation %d (was %d)", c, st.GetGeneration(), cur.GetGeneration())
	}

	// Scale subresource.
	scaleGVR := widgetsV1
	sc, err := widgets.Get(ctx, "red", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if sc.GetKind() != "Scale" || sc.GetAPIVersion() != "autoscaling/v1" {
		t.Fatalf("scale = %v", sc.Object)
	}
	if r, _, _ := unstructured.NestedInt64(sc.Object, "status", "replicas"); r != 1 {
		t.Errorf("scale status.replicas = %d", r)
	}
	if sel, _, _ := unstructured.NestedString(sc.Object, "status", "selector"); sel != "app=red" {
		t.Errorf("scale status.selector = %q", sel)
	}
	_ = unstructured.SetNestedField(sc.Object, int64(5), "spec", "replicas")
	if _, err := dyn.Resource(scaleGVR).Namespace("default").Update(ctx, sc, metav1.UpdateOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	scaled, _ := widgets.Get(ctx, "red", metav1.GetOptions{})
	if r, _, _ := unstructured.NestedInt64(scaled.Object, "spec", "replicas"); r != 5 {
		t.Errorf("spec.replicas after scale = %d", r)
	}

	// kubectl scale patches the Scale.
	if _, err := widgets.Patch(ctx, "red", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatal(err)
	}
	scaled, _ = widgets.Get(ctx, "red", metav1.GetOptions{})
	if r, _, _ := unstructured.NestedInt64(scaled.Object, "spec", "replicas"); r != 2 {
		t.Errorf("spec.replicas after a scale patch = %d", r)
	}

	// Tables: the CRD's printer columns.
	code, body, _ = rawGet(t, s.URL+"/apis/example.com/v1/namespaces/default/widgets", "application/json;as=Table;v=v1;g=meta.k8s.io")
	if code != 200 || !strings.Contains(body, `"name":"Color"`) || !strings.Contains(body, `"kind":"Table"`) {
		t.Errorf("table: %d %.500s", code, body)
	}
	// Metadata-only reads (garbage collector, namespace controller).
	code, body, _ = rawGet(t, s.URL+"/apis/example.com/v1/namespaces/default/widgets/red", "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
	if code != 200 || !strings.Contains(body, `"kind":"PartialObjectMetadata"`) || !strings.Contains(body, `"name":"red"`) {
		t.Errorf("partial metadata: %d %s", code, body)
	}

	// YAML, and the metadata client the garbage collector uses (protobuf
	// PartialObjectMetadata, which custom resources serve too).
	if code, body, _ := rawGet(t, s.URL+"/apis/example.com/v1/namespaces/default/widgets/red", "application/yaml"); code != 200 || !strings.Contains(body, "kind: Widget") {
		t.Errorf("yaml: %d %s", code, body)
	}
	ml, err := metadata.NewForConfigOrDie(s.Config).Resource(widgetsV1).List(ctx, metav1.ListOptions{})
	if err != nil || len(ml.Items) != 3 {
		t.Fatalf("metadata list: %v %v", ml, err)
	}

	// Delete and deletecollection.
	if err := widgets.Delete(ctx, "green", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := widgets.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "color=blue"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := widgets.List(ctx, metav1.ListOptions{}); len(l.Items) != 1 {
		t.Errorf("after deletes: %d widgets", len(l.Items))
	}
}

func TestCustomResourceSchemaValidationAndPruning(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	createEstablished(t, s, widgetCRD())
	widgets := dynamic.NewForConfigOrDie(s.Config).Resource(widgetsV1).Namespace("default")

	_, err := widgets.Create(ctx, widget("neg", "red", -1), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.replicas") {
		t.Fatalf("negative replicas: %v", err)
	}
	var se apierrors.APIStatus
	if errors.As(err, &se) && (se.Status().Details == nil || se.Status().Details.Kind != "Widget" || se.Status().Details.Group != "example.com") {
		t.Errorf("422 details = %+v", se.Status().Details)
	}

	extra := widget("extra", "red", 1)
	extra.Object["spec"].(map[string]any)["unknown"] = "x"
	_, err = widgets.Create(ctx, extra, metav1.CreateOptions{FieldValidation: "Strict"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.unknown"`) {
		t.Fatalf("strict unknown field: %v", err)
	}
	got, err := widgets.Create(ctx, extra, metav1.CreateOptions{FieldValidation: "Ignore"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Object["spec"].(map[string]any)["unknown"]; ok {
		t.Errorf("unknown field was not pruned: %v", got.Object["spec"])
	}

	wrongKind := widget("wrong", "red", 1)
	wrongKind.SetKind("Gadget")
	code, body := do(t, http.MethodPost, s.URL+"/apis/example.com/v1/namespaces/default/widgets", "application/json", mustJSON(t, wrongKind.Object))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "must be Widget") {
		t.Errorf("wrong kind: %d %s", code, body)
	}
	wrongVersion := widget("wrongv", "red", 1)
	wrongVersion.SetAPIVersion("example.com/v1beta1")
	code, body = do(t, http.MethodPost, s.URL+"/apis/example.com/v1/namespaces/default/widgets", "application/json", mustJSON(t, wrongVersion.Object))
	if code != http.StatusBadRequest || !strings.Contains(body, "does not match the expected API version") {
		t.Errorf("wrong version: %d %s", code, body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func nsObject(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func clientv3WithPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

func rbacRule(verbs []string, group, resource string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: []string{group}, Resources: []string{resource}}
}
