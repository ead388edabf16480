package fieldmanager

import (
	"net/http"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const deployA = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1
`

func TestApplyConflictAndForce(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	live := mustApply(t, m, emptyDeployment(), deployA, "manager-a", false)
	if got := *live.(*appsv1.Deployment).Spec.Replicas; got != 3 {
		t.Fatalf("replicas = %d, want 3", got)
	}
	if !owns(t, live, "manager-a", "f:spec", "f:replicas") {
		t.Fatalf("manager-a should own .spec.replicas: %s", dumpManaged(t, live))
	}

	patchB := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":5}}`
	_, err := m.Apply(live, []byte(patchB), "manager-b", false)
	if !apierrors.IsConflict(err) {
		t.Fatalf("apply by manager-b: got %v, want a 409 Conflict", err)
	}
	status := err.(apierrors.APIStatus).Status()
	if status.Code != http.StatusConflict || status.Reason != metav1.StatusReasonConflict {
		t.Errorf("status = %d %s, want 409 Conflict", status.Code, status.Reason)
	}
	if want := `Apply failed with 1 conflict: conflict with "manager-a": .spec.replicas`; status.Message != want {
		t.Errorf("message = %q, want %q", status.Message, want)
	}
	if status.Details == nil || len(status.Details.Causes) != 1 {
		t.Fatalf("causes = %+v, want one", status.Details)
	}
	cause := status.Details.Causes[0]
	if cause.Type != metav1.CauseTypeFieldManagerConflict || cause.Field != ".spec.replicas" || cause.Message != `conflict with "manager-a"` {
		t.Errorf("cause = %+v", cause)
	}

	forced, err := m.Apply(live, []byte(patchB), "manager-b", true)
	if err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	if got := *forced.(*appsv1.Deployment).Spec.Replicas; got != 5 {
		t.Errorf("replicas = %d, want 5", got)
	}
	if !owns(t, forced, "manager-b", "f:spec", "f:replicas") || owns(t, forced, "manager-a", "f:spec", "f:replicas") {
		t.Errorf("after force manager-b should own .spec.replicas alone: %s", dumpManaged(t, forced))
	}
	if !owns(t, forced, "manager-a", "f:spec", "f:template") {
		t.Errorf("manager-a should keep the rest: %s", dumpManaged(t, forced))
	}
}

func TestConflictWithUpdaterNamesVersion(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	live := mustApply(t, m, emptyDeployment(), deployA, "kubectl", false)
	edited := live.DeepCopyObject().(*appsv1.Deployment)
	*edited.Spec.Replicas = 4
	out, err := m.Update(live, edited, "manager-a")
	if err != nil {
		t.Fatal(err)
	}
	patch := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":7}}`
	_, err = m.Apply(out, []byte(patch), "other", false)
	want := `Apply failed with 1 conflict: conflict with "manager-a" using apps/v1: .spec.replicas`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestApplyRemovesOwnedFieldsOnly(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	withLabels := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","labels":{"mine":"1","shared":"x"}}}`
	live := mustApply(t, m, emptyDeployment(), withLabels, "a", false)
	live = mustApply(t, m, live, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","labels":{"shared":"x"}}}`, "b", false)

	out := mustApply(t, m, live, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"}}`, "a", false)
	labels := out.(*appsv1.Deployment).Labels
	if _, ok := labels["mine"]; ok {
		t.Errorf("label only a owned survived: %v", labels)
	}
	if labels["shared"] != "x" {
		t.Errorf("label b also owns was removed: %v", labels)
	}
	if hasEntry(t, out, "a") {
		t.Errorf("a owns nothing any more and should have no entry: %s", dumpManaged(t, out))
	}
}

func TestListMapsMergeByKey(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	live := mustApply(t, m, emptyDeployment(), deployA, "a", false)
	sidecar := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  template:
    spec:
      containers:
      - name: sidecar
        image: busybox
        ports:
        - {containerPort: 53, protocol: UDP}
        - {containerPort: 53, protocol: TCP}
`
	out := mustApply(t, m, live, sidecar, "b", false)
	cs := out.(*appsv1.Deployment).Spec.Template.Spec.Containers
	if len(cs) != 2 || cs[0].Name != "app" || cs[1].Name != "sidecar" {
		t.Fatalf("containers = %+v, want app and sidecar", cs)
	}
	if len(cs[1].Ports) != 2 {
		t.Fatalf("ports = %+v: same port, different protocols are two entries", cs[1].Ports)
	}
	if !owns(t, out, "b", "f:spec", "f:template", "f:spec", "f:containers", `k:{"name":"sidecar"}`, "f:ports", `k:{"containerPort":53,"protocol":"UDP"}`) {
		t.Errorf("b should own the UDP port by its keys: %s", dumpManaged(t, out))
	}
	if owns(t, out, "b", "f:spec", "f:template", "f:spec", "f:containers", `k:{"name":"app"}`) {
		t.Errorf("b should not own a's container: %s", dumpManaged(t, out))
	}
}

func TestUpdateAfterApplyRecordsUpdateEntry(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	live := mustApply(t, m, emptyDeployment(), deployA, "kubectl", false)
	edited := live.DeepCopyObject().(*appsv1.Deployment)
	edited.Spec.Template.Spec.Containers[0].Image = "nginx:2"
	out, err := m.Update(live, edited, "kubectl-edit")
	if err != nil {
		t.Fatal(err)
	}
	e := entryOf(t, out, "kubectl-edit", metav1.ManagedFieldsOperationUpdate)
	if e.APIVersion != "apps/v1" || e.FieldsType != "FieldsV1" || e.Time == nil {
		t.Errorf("entry = %+v", e)
	}
	wantFields := `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{"f:image":{}}}}}}}`
	if string(e.FieldsV1.Raw) != wantFields {
		t.Errorf("fields = %s, want %s", e.FieldsV1.Raw, wantFields)
	}
	if owns(t, out, "kubectl", "f:spec", "f:template", "f:spec", "f:containers", `k:{"name":"app"}`, "f:image") {
		t.Errorf("the applier lost the image to the editor: %s", dumpManaged(t, out))
	}
	// Apply entries come first, as upstream sorts them.
	if mf := managedFieldsOf(t, out); mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("order: %s", dumpManaged(t, out))
	}
}

func TestUpdateWithoutChangeKeepsTime(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	live := mustApply(t, m, emptyDeployment(), deployA, "kubectl", false)
	edited := live.DeepCopyObject().(*appsv1.Deployment)
	*edited.Spec.Replicas = 9
	live, _ = m.Update(live, edited, "scaler")
	before := entryOf(t, live, "scaler", metav1.ManagedFieldsOperationUpdate).Time

	same := live.DeepCopyObject().(*appsv1.Deployment)
	out, err := m.Update(live, same, "scaler")
	if err != nil {
		t.Fatal(err)
	}
	if after := entryOf(t, out, "scaler", metav1.ManagedFieldsOperationUpdate).Time; !after.Equal(before) {
		t.Errorf("time moved from %v to %v on a no-op update", before, after)
	}
}

func TestNoopApplyKeepsTime(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	live := mustApply(t, m, emptyDeployment(), deployA, "kubectl", false)
	applied := entryOf(t, live, "kubectl", metav1.ManagedFieldsOperationApply).Time
	again := mustApply(t, m, live, deployA, "kubectl", false)
	if got := entryOf(t, again, "kubectl", metav1.ManagedFieldsOperationApply).Time; !got.Equal(applied) {
		t.Errorf("apply time moved from %v to %v on a no-op apply", applied, got)
	}
}

func TestCreateConfigMapThroughApply(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "")
	empty := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}}
	out, err := m.Apply(empty, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: default\ndata:\n  k: v\n"), "tool", false)
	if err != nil {
		t.Fatal(err)
	}
	cm, ok := out.(*corev1.ConfigMap)
	if !ok {
		t.Fatalf("result is %T, want *v1.ConfigMap", out)
	}
	if cm.Data["k"] != "v" || cm.Name != "cfg" {
		t.Errorf("configmap = %+v", cm)
	}
	want := metav1.ManagedFieldsEntry{
		Manager: "tool", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:k":{}}}`)},
	}
	got := cm.ManagedFields
	if len(got) != 1 || got[0].Manager != want.Manager || got[0].Operation != want.Operation || got[0].APIVersion != want.APIVersion ||
		got[0].FieldsType != want.FieldsType || string(got[0].FieldsV1.Raw) != string(want.FieldsV1.Raw) || got[0].Time == nil {
		t.Errorf("managedFields = %s", dumpManaged(t, out))
	}
}

func TestApplyRejectsBadPatches(t *testing.T) {
	m := builtinManager(t, deploymentGVK, "")
	for name, tc := range map[string]struct{ patch, message string }{
		"wrong version": {`{"apiVersion":"apps/v1beta1","kind":"Deployment","metadata":{"name":"web"}}`, "invalid object type: apps/v1beta1, Kind=Deployment"},
		"wrong kind":    {`{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"web"}}`, "invalid object type: apps/v1, Kind=StatefulSet"},
		"managedFields": {`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","managedFields":[]}}`, "metadata.managedFields must be nil"},
		"not yaml":      {"{", ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := m.Apply(emptyDeployment(), []byte(tc.patch), "x", false)
			if !apierrors.IsBadRequest(err) {
				t.Fatalf("err = %v, want 400 BadRequest", err)
			}
			if tc.message != "" && err.Error() != tc.message {
				t.Errorf("message = %q, want %q", err.Error(), tc.message)
			}
		})
	}
	if _, err := m.Apply(emptyDeployment(), []byte(`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"bogus":1}}`), "x", false); err == nil {
		t.Error("a field the schema lacks should fail the apply")
	}
}

func TestFirstApplyConflictsWithExistingFields(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	// An object written before anyone tracked fields.
	three := int32(3)
	live := emptyDeployment()
	live.UID = "uid-1"
	live.Spec.Replicas = &three
	patch := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":4}}`
	_, err := m.Apply(live, []byte(patch), "a", false)
	want := `Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
