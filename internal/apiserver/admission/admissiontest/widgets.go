// Package admissiontest holds fixtures the admission plugins' tests share:
// a custom resource served in two versions, for matchPolicy Equivalent.
package admissiontest

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// WidgetVersions serves example.com widgets in v1 (spec.size) and v2
// (spec.replicas): one object in two versions, for matchPolicy Equivalent.
type WidgetVersions struct{}

var (
	WidgetsV1 = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	WidgetsV2 = schema.GroupVersionResource{Group: "example.com", Version: "v2", Resource: "widgets"}
)

func (WidgetVersions) EquivalentResources(gvr schema.GroupVersionResource, _ string) []admission.EquivalentResource {
	if gvr.GroupResource() != WidgetsV1.GroupResource() {
		return nil
	}
	return []admission.EquivalentResource{
		{Resource: WidgetsV2, Kind: WidgetsV2.GroupVersion().WithKind("Widget")},
		{Resource: WidgetsV1, Kind: WidgetsV1.GroupVersion().WithKind("Widget")},
	}
}

func (WidgetVersions) Convert(_ context.Context, obj runtime.Object, from, to schema.GroupVersionKind) (runtime.Object, error) {
	u := obj.(*unstructured.Unstructured).DeepCopy()
	if u.GetAPIVersion() != from.GroupVersion().String() {
		return nil, fmt.Errorf("object is %s, not %v", u.GetAPIVersion(), from)
	}
	fields := map[string]string{"v1": "size", "v2": "replicas"}
	if n, ok, _ := unstructured.NestedInt64(u.Object, "spec", fields[from.Version]); ok {
		unstructured.RemoveNestedField(u.Object, "spec", fields[from.Version])
		_ = unstructured.SetNestedField(u.Object, n, "spec", fields[to.Version])
	}
	u.SetGroupVersionKind(to)
	return u, nil
}

// WidgetCreate creates a widget through version (v1 or v2) with the
// version's count field set to n.
func WidgetCreate(version string, n int64) *admission.Attributes {
	field := map[string]string{"v1": "size", "v2": "replicas"}[version]
	gvr := schema.GroupVersionResource{Group: "example.com", Version: version, Resource: "widgets"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "w", "namespace": "default"},
		"spec":     map[string]any{field: n},
	}}
	obj.SetGroupVersionKind(gvr.GroupVersion().WithKind("Widget"))
	return &admission.Attributes{
		Operation: admission.Create, Kind: gvr.GroupVersion().WithKind("Widget"), Resource: gvr,
		Namespace: "default", Name: "w", Object: obj, Equivalents: WidgetVersions{},
		User: &authn.User{Name: "alice"},
	}
}
