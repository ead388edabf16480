package fieldmanager

import (
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// clientSideApplied is a Deployment as `kubectl apply` (client-side) leaves
// it: the configuration in the annotation, every field owned by the
// kubectl-client-side-apply updater.
func clientSideApplied(t *testing.T, m *Manager, config string, liveReplicas int32) runtime.Object {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := yaml.Unmarshal([]byte(config), d); err != nil {
		t.Fatal(err)
	}
	last, err := yaml.YAMLToJSON([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	d.Annotations = map[string]string{LastAppliedAnnotation: string(last)}
	d.Spec.Replicas = &liveReplicas
	d.TypeMeta = metav1.TypeMeta{} // stored objects carry no type meta
	out, err := m.Update(nil, d, "kubectl-client-side-apply")
	if err != nil {
		t.Fatal(err)
	}
	return stored(out)
}

func TestServerSideApplyTakesOverFromClientSideApply(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	live := clientSideApplied(t, m, deployA, 3)
	scaledUp := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":5,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"nginx:1"}]}}}}`

	// Any other manager conflicts with the client-side applier.
	_, err := m.Apply(live, []byte(scaledUp), "other", false)
	want := `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`
	if !apierrors.IsConflict(err) || err.Error() != want {
		t.Fatalf("apply by other: %v, want %q", err, want)
	}

	out, err := m.Apply(live, []byte(scaledUp), "kubectl", false)
	if err != nil {
		t.Fatalf("kubectl apply --server-side: %v", err)
	}
	d := out.(*appsv1.Deployment)
	if *d.Spec.Replicas != 5 {
		t.Errorf("replicas = %d, want 5", *d.Spec.Replicas)
	}
	if !owns(t, out, "kubectl", "f:spec", "f:replicas") || owns(t, out, "kubectl-client-side-apply", "f:spec", "f:replicas") {
		t.Errorf("kubectl should own .spec.replicas alone: %s", dumpManaged(t, out))
	}
	// The annotation follows the new configuration.
	var last map[string]any
	if err := json.Unmarshal([]byte(d.Annotations[LastAppliedAnnotation]), &last); err != nil {
		t.Fatalf("annotation: %v", err)
	}
	if got := last["spec"].(map[string]any)["replicas"]; got != float64(5) {
		t.Errorf("last-applied replicas = %v, want 5", got)
	}
}

func TestClientSideApplyDriftStillConflicts(t *testing.T) {
	fixedClock(t)
	m := builtinManager(t, deploymentGVK, "")
	// The annotation says 3 but the object has 4: the applier no longer
	// holds that value, so kubectl must not silently take it.
	live := clientSideApplied(t, m, deployA, 4)
	patch := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":5}}`
	if _, err := m.Apply(live, []byte(patch), "kubectl", false); !apierrors.IsConflict(err) {
		t.Fatalf("err = %v, want a conflict", err)
	}
}
