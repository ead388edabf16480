package fieldmanager

import (
	"encoding/json"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var deploymentGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

// fixedClock makes now() return t0, t0+1s, ... and restores it after the test.
func fixedClock(t *testing.T) {
	t.Helper()
	saved := now
	next := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now = func() metav1.Time {
		cur := next
		next = next.Add(time.Second)
		return metav1.Time{Time: cur}
	}
	t.Cleanup(func() { now = saved })
}

func builtinManager(t *testing.T, gvk schema.GroupVersionKind, subresource string) *Manager {
	t.Helper()
	tc, err := BuiltinTypeConverter()
	if err != nil {
		t.Fatalf("BuiltinTypeConverter: %v", err)
	}
	return New(tc, gvk, subresource)
}

// emptyDeployment is what the request path passes for a create through apply.
func emptyDeployment() *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
}

// stored gives an applied object the identity the store would.
func stored(obj runtime.Object) runtime.Object {
	if d, ok := obj.(*appsv1.Deployment); ok {
		d.UID = types.UID("uid-1")
	}
	return obj
}

func mustApply(t *testing.T, m *Manager, live runtime.Object, patch, manager string, force bool) runtime.Object {
	t.Helper()
	out, err := m.Apply(live, []byte(patch), manager, force)
	if err != nil {
		t.Fatalf("apply by %s: %v", manager, err)
	}
	return stored(out)
}

func managedFieldsOf(t *testing.T, obj runtime.Object) []metav1.ManagedFieldsEntry {
	t.Helper()
	a, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	return a.GetManagedFields()
}

// entryOf returns manager's entry with operation op, failing if absent.
func entryOf(t *testing.T, obj runtime.Object, manager string, op metav1.ManagedFieldsOperationType) metav1.ManagedFieldsEntry {
	t.Helper()
	for _, e := range managedFieldsOf(t, obj) {
		if e.Manager == manager && e.Operation == op {
			return e
		}
	}
	t.Fatalf("no %s entry for %q in %s", op, manager, dumpManaged(t, obj))
	return metav1.ManagedFieldsEntry{}
}

func hasEntry(t *testing.T, obj runtime.Object, manager string) bool {
	for _, e := range managedFieldsOf(t, obj) {
		if e.Manager == manager {
			return true
		}
	}
	return false
}

// owns reports whether manager's fieldsV1 contains the given path of
// "f:..." keys.
func owns(t *testing.T, obj runtime.Object, manager string, path ...string) bool {
	t.Helper()
	for _, e := range managedFieldsOf(t, obj) {
		if e.Manager != manager || e.FieldsV1 == nil {
			continue
		}
		var node map[string]any
		if err := json.Unmarshal(e.FieldsV1.Raw, &node); err != nil {
			t.Fatal(err)
		}
		found := true
		for _, p := range path {
			child, ok := node[p].(map[string]any)
			if !ok {
				found = false
				break
			}
			node = child
		}
		if found {
			return true
		}
	}
	return false
}

func dumpManaged(t *testing.T, obj runtime.Object) string {
	b, _ := json.MarshalIndent(managedFieldsOf(t, obj), "", "  ")
	return string(b)
}
