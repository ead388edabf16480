package apiserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func TestDeletingACRDDeletesItsObjects(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	createEstablished(t, s, widgetCRD())
	ext := apiextclient.NewForConfigOrDie(s.Config)
	dyn := dynamic.NewForConfigOrDie(s.Config)
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, nsObject("other"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", "other"} {
		if _, err := dyn.Resource(widgetsV1).Namespace(ns).Create(ctx, widget("w", "red", 1), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "the CRD to go", func() bool {
		_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	resp, err := s.Etcd.Client.Get(ctx, "/registry/example.com/widgets/", clientv3WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("objects left in etcd: %v %v", resp, err)
	}
	testserver.Eventually(t, "the resource to stop being served", func() bool {
		_, err := dyn.Resource(widgetsV1).List(ctx, metav1.ListOptions{})
		return apierrors.IsNotFound(err)
	})
	if code, _, _ := rawGet(t, s.URL+"/apis/example.com", ""); code != http.StatusNotFound {
		t.Errorf("/apis/example.com after deletion: %d", code)
	}
}

func TestCRDNameConflictIsReported(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	createEstablished(t, s, widgetCRD())
	ext := apiextclient.NewForConfigOrDie(s.Config)
	other := widgetCRD()
	other.Name = "gadgets.example.com"
	other.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList", ShortNames: []string{"widgets"}}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cond apiextensionsv1.CustomResourceDefinitionCondition
	testserver.Eventually(t, "NamesAccepted False", func() bool {
		got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, other.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.NamesAccepted && c.Status == apiextensionsv1.ConditionFalse {
				cond = c
				return true
			}
		}
		return false
	})
	if cond.Reason != "ShortNamesConflict" || cond.Message != `"widgets" is already in use` {
		t.Errorf("NamesAccepted = %+v", cond)
	}
	got, _ := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, other.Name, metav1.GetOptions{})
	for _, c := range got.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status != apiextensionsv1.ConditionFalse {
			t.Errorf("Established = %+v", c)
		}
	}
}

func TestCustomResourcesSurviveARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := testserver.StartWith(t, testserver.Options{DataDir: dir})
	createEstablished(t, s, widgetCRD())
	if _, err := dynamic.NewForConfigOrDie(s.Config).Resource(widgetsV1).Namespace("default").Create(ctx, widget("keep", "red", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Stop()

	s = testserver.StartWith(t, testserver.Options{DataDir: dir})
	// Served as soon as the server is ready: no waiting.
	got, err := dynamic.NewForConfigOrDie(s.Config).Resource(widgetsV1).Namespace("default").Get(ctx, "keep", metav1.GetOptions{})
	if err != nil || got.GetName() != "keep" {
		t.Fatalf("after restart: %v %v", got, err)
	}
	if _, err := s.Client.Discovery().ServerResourcesForGroupVersion("example.com/v1"); err != nil {
		t.Errorf("discovery after restart: %v", err)
	}
}

func TestCustomResourcesFollowRBAC(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t)
	adminCfg := *s.Config
	adminCfg.BearerToken = "admin"
	createEstablished(t, &testserver.Server{URL: s.URL, Config: &adminCfg, Client: s.ClientWithToken("admin"), Etcd: s.Etcd}, widgetCRD())
	aliceCfg := *s.Config
	aliceCfg.BearerToken = "alice"
	alice := dynamic.NewForConfigOrDie(&aliceCfg).Resource(widgetsV1).Namespace("default")
	if _, err := alice.List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), `cannot list resource "widgets" in API group "example.com"`) {
		t.Fatalf("list without a binding: %v", err)
	}
	admin := s.ClientWithToken("admin")
	mustCreateRole(t, admin, "default", "widget-reader", rbacRule([]string{"get", "list"}, "example.com", "widgets"))
	mustBind(t, admin, "default", "alice-widgets", "Role", "widget-reader", "alice")
	testserver.Eventually(t, "alice may list widgets", func() bool {
		_, err := alice.List(ctx, metav1.ListOptions{})
		return err == nil
	})
	if _, err := alice.Create(ctx, widget("no", "red", 1), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create without the verb: %v", err)
	}
}

func TestCRDDeletionWaitsForObjectFinalizers(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	createEstablished(t, s, widgetCRD())
	ext := apiextclient.NewForConfigOrDie(s.Config)
	widgets := dynamic.NewForConfigOrDie(s.Config).Resource(widgetsV1).Namespace("default")
	held := widget("held", "red", 1)
	held.SetFinalizers([]string{"example.com/hold"})
	if _, err := widgets.Create(ctx, held, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Selectable fields of the CRD work as field selectors.
	if l, err := widgets.List(ctx, metav1.ListOptions{FieldSelector: "spec.color=red"}); err != nil || len(l.Items) != 1 {
		t.Fatalf("selectable field: %v %v", l, err)
	}
	if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "the object to be marked deleted", func() bool {
		got, err := widgets.Get(ctx, "held", metav1.GetOptions{})
		return err == nil && got.GetDeletionTimestamp() != nil
	})
	crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
	if err != nil || crd.DeletionTimestamp == nil || len(crd.Finalizers) != 1 || crd.Finalizers[0] != "customresourcecleanup.apiextensions.k8s.io" {
		t.Fatalf("deleting CRD = %+v, %v", crd, err)
	}
	terminating := false
	for _, c := range crd.Status.Conditions {
		terminating = terminating || (c.Type == apiextensionsv1.Terminating && c.Status == apiextensionsv1.ConditionTrue)
	}
	if !terminating {
		t.Errorf("conditions of a deleting CRD: %+v", crd.Status.Conditions)
	}
	_, err = widgets.Create(ctx, widget("late", "red", 1), metav1.CreateOptions{})
	if !apierrors.IsMethodNotSupported(err) || !strings.Contains(err.Error(), "terminating") {
		t.Errorf("create while terminating: %v", err)
	}
	if _, err := widgets.Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "the CRD to go", func() bool {
		_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

func TestUpdatingACRDChangesWhatIsServed(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	crd := createEstablished(t, s, widgetCRD())
	ext := apiextclient.NewForConfigOrDie(s.Config)
	dyn := dynamic.NewForConfigOrDie(s.Config)
	if _, err := dyn.Resource(widgetsV1).Namespace("default").Create(ctx, widget("w", "red", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// v2 becomes the storage version; v1beta1 stops being served.
	v2 := *crd.Spec.Versions[0].DeepCopy()
	v2.Name = "v2"
	crd.Spec.Versions[0].Storage = false
	crd.Spec.Versions[1].Served = false
	crd.Spec.Versions = append(crd.Spec.Versions, v2)
	updated, err := ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, crd, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := updated.Status.StoredVersions; len(got) != 2 || got[0] != "v1" || got[1] != "v2" {
		t.Errorf("storedVersions = %v, want [v1 v2]", got)
	}
	v2GVR := schema.GroupVersionResource{Group: "example.com", Version: "v2", Resource: "widgets"}
	testserver.Eventually(t, "v2 served", func() bool {
		got, err := dyn.Resource(v2GVR).Namespace("default").Get(ctx, "w", metav1.GetOptions{})
		return err == nil && got.GetAPIVersion() == "example.com/v2"
	})
	testserver.Eventually(t, "v1beta1 gone", func() bool {
		_, err := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1beta1", Resource: "widgets"}).Namespace("default").Get(ctx, "w", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	groups, err := s.Client.Discovery().ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.Groups {
		if g.Name == "example.com" && (g.PreferredVersion.Version != "v2" || len(g.Versions) != 2) {
			t.Errorf("example.com after the update = %+v", g)
		}
	}
	// A write through v2 is stored as v2.
	if _, err := dyn.Resource(v2GVR).Namespace("default").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v2", "kind": "Widget", "metadata": map[string]any{"name": "new"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Etcd.Client.Get(ctx, "/registry/example.com/widgets/default/new")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"apiVersion":"example.com/v2"`) {
		t.Errorf("stored: %v %v", resp, err)
	}
}

// Schema defaults apply on write and, as upstream, on read from storage:
// a default added later shows on objects stored before it.
func TestCustomResourceDefaultsApplyOnWriteAndRead(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	crd := createEstablished(t, s, widgetCRD())
	widgets := dynamic.NewForConfigOrDie(s.Config).Resource(widgetsV1).Namespace("default")
	old := widget("old", "red", 1)
	unstructured.RemoveNestedField(old.Object, "spec", "selector")
	if _, err := widgets.Create(ctx, old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for i := range crd.Spec.Versions {
		spec := crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"]
		sel := spec.Properties["selector"]
		sel.Default = &apiextensionsv1.JSON{Raw: []byte(`"app=default"`)}
		spec.Properties["selector"] = sel
		crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	}
	ext := apiextclient.NewForConfigOrDie(s.Config)
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, crd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "the default on read", func() bool {
		got, err := widgets.Get(ctx, "old", metav1.GetOptions{})
		sel, _, _ := unstructured.NestedString(got.Object, "spec", "selector")
		return err == nil && sel == "app=default"
	})
	fresh := widget("fresh", "blue", 1)
	unstructured.RemoveNestedField(fresh.Object, "spec", "selector")
	got, err := widgets.Create(ctx, fresh, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sel, _, _ := unstructured.NestedString(got.Object, "spec", "selector"); sel != "app=default" {
		t.Errorf("default on create: %q", sel)
	}
}
