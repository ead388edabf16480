package fieldmanager

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var configMapGVK = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

func newConfigMap(data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}, Data: data}
}

// trailingData is managedFields upstream fails to decode (see its
// TestManagedFieldsTrailingData).
func trailingData() []metav1.ManagedFieldsEntry {
	return []metav1.ManagedFieldsEntry{{
		Manager: "trailing-data-test", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:test.example.com/myannotation":{}}}}{"trailing":"data"}`)},
	}}
}

func TestCreateRecordsCreator(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, configMapGVK, "")
	cm := newConfigMap(map[string]string{"foo": "bar"})
	cm.ManagedFields = trailingData()
	out, err := m.Update(nil, cm, "creator")
	if err != nil {
		t.Fatal(err)
	}
	mf := out.(*corev1.ConfigMap).ManagedFields
	if len(mf) != 1 || mf[0].Manager != "creator" || mf[0].Operation != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("managedFields = %s", dumpManaged(t, out))
	}
	if got, want := string(mf[0].FieldsV1.Raw), `{"f:data":{".":{},"f:foo":{}}}`; got != want {
		t.Errorf("fields = %s, want %s", got, want)
	}

	// Creating an object that sets nothing records no one.
	empty, err := m.Update(&corev1.ConfigMap{}, newConfigMap(map[string]string{}), "creator")
	if err != nil {
		t.Fatal(err)
	}
	if mf := empty.(*corev1.ConfigMap).ManagedFields; len(mf) != 0 {
		t.Errorf("managedFields = %s, want none", dumpManaged(t, empty))
	}
}

func TestUpdateKeepsLiveManagedFieldsWhenNextsAreInvalid(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, configMapGVK, "")
	created, err := m.Update(nil, newConfigMap(map[string]string{"foo": "bar"}), "client")
	if err != nil {
		t.Fatal(err)
	}
	live := created.(*corev1.ConfigMap)
	live.UID = "uid-1"
	next := live.DeepCopy()
	next.Data["foo"] = "baz"
	next.Data["new-key"] = "new-value"
	next.ManagedFields = trailingData()
	out, err := m.Update(live, next, "client")
	if err != nil {
		t.Fatal(err)
	}
	mf := out.(*corev1.ConfigMap).ManagedFields
	if len(mf) != 1 {
		t.Fatalf("managedFields = %s, want one entry", dumpManaged(t, out))
	}
	if got, want := string(mf[0].FieldsV1.Raw), `{"f:data":{".":{},"f:foo":{},"f:new-key":{}}}`; got != want {
		t.Errorf("fields = %s, want %s", got, want)
	}
}

func TestUpdateResetsManagedFields(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, configMapGVK, "")
	created, _ := m.Update(nil, newConfigMap(map[string]string{"a": "1"}), "client")
	live := created.(*corev1.ConfigMap)
	live.UID = "uid-1"
	for name, reset := range map[string][]metav1.ManagedFieldsEntry{
		"empty list":  {},
		"empty entry": {{}},
	} {
		t.Run(name, func(t *testing.T) {
			next := live.DeepCopy()
			next.Data["b"] = "2"
			next.ManagedFields = reset
			out, err := m.Update(live, next, "client")
			if err != nil {
				t.Fatal(err)
			}
			// Reset, the object is no longer tracked until its next apply.
			if mf := out.(*corev1.ConfigMap).ManagedFields; mf != nil {
				t.Errorf("managedFields = %s, want none", dumpManaged(t, out))
			}
		})
	}
}

func TestUntrackedObjectStaysUntracked(t *testing.T) {
	m := builtinManager(t, configMapGVK, "")
	live := newConfigMap(map[string]string{"a": "1"})
	live.UID = "uid-1"
	next := live.DeepCopy()
	next.Data["a"] = "2"
	out, err := m.Update(live, next, "client")
	if err != nil {
		t.Fatal(err)
	}
	if mf := out.(*corev1.ConfigMap).ManagedFields; mf != nil {
		t.Errorf("managedFields = %s, want none", dumpManaged(t, out))
	}
}

func TestSubresourceIgnoresRequestedManagedFields(t *testing.T) {
	fixedClock(t)
	main := builtinManager(t, deploymentGVK, "")
	live := mustApply(t, main, emptyDeployment(), deployA, "kubectl", false).(*appsv1.Deployment)
	status := builtinManager(t, deploymentGVK, "status")
	next := live.DeepCopy()
	next.Status.Replicas = 3
	next.ManagedFields = nil // a status writer cannot drop the others' entries
	out, err := status.Update(live, next, "deployment-controller")
	if err != nil {
		t.Fatal(err)
	}
	e := entryOf(t, out, "deployment-controller", metav1.ManagedFieldsOperationUpdate)
	if e.Subresource != "status" {
		t.Errorf("subresource = %q, want status", e.Subresource)
	}
	if !hasEntry(t, out, "kubectl") {
		t.Errorf("the applier's entry was lost: %s", dumpManaged(t, out))
	}
}

func TestUpdateManagersAreCapped(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, configMapGVK, "")
	obj, err := m.Update(nil, newConfigMap(map[string]string{"k0": "v"}), "manager-0")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 12; i++ {
		live := obj.(*corev1.ConfigMap)
		live.UID = "uid-1"
		next := live.DeepCopy()
		next.Data[fmt.Sprintf("k%d", i)] = "v"
		if obj, err = m.Update(live, next, fmt.Sprintf("manager-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	mf := obj.(*corev1.ConfigMap).ManagedFields
	if len(mf) != maxUpdateManagers {
		t.Fatalf("%d entries, want %d: %s", len(mf), maxUpdateManagers, dumpManaged(t, obj))
	}
	// Thirteen updaters: the four oldest end up in one bucket, the newest
	// nine keep their own entries.
	bucket := entryOf(t, obj, "ancient-changes", metav1.ManagedFieldsOperationUpdate)
	if got, want := string(bucket.FieldsV1.Raw), `{"f:data":{".":{},"f:k0":{},"f:k1":{},"f:k2":{},"f:k3":{}}}`; got != want {
		t.Errorf("ancient-changes fields = %s, want %s", got, want)
	}
	for i := 0; i < 4; i++ {
		if hasEntry(t, obj, fmt.Sprintf("manager-%d", i)) {
			t.Errorf("manager-%d should have been merged: %s", i, dumpManaged(t, obj))
		}
	}
	if !hasEntry(t, obj, "manager-4") || !hasEntry(t, obj, "manager-12") {
		t.Errorf("recent managers are missing: %s", dumpManaged(t, obj))
	}
}
