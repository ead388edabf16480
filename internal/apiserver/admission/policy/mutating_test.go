package policy

import (
	"context"
	"net/http"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

func newMAP(name string, mutations ...admissionregistrationv1.Mutation) *admissionregistrationv1.MutatingAdmissionPolicy {
	return &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: newUID(), ResourceVersion: "1"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			FailurePolicy:      ptr.To(admissionregistrationv1.Fail),
			MatchConstraints:   podRules(),
			Mutations:          mutations,
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}
}

func newMAPBinding(name, policy string) *admissionregistrationv1.MutatingAdmissionPolicyBinding {
	return &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: newUID(), ResourceVersion: "1"},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: policy},
	}
}

func applyConfig(expr string) admissionregistrationv1.Mutation {
	return admissionregistrationv1.Mutation{
		PatchType:          admissionregistrationv1.PatchTypeApplyConfiguration,
		ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: expr},
	}
}

func jsonPatch(expr string) admissionregistrationv1.Mutation {
	return admissionregistrationv1.Mutation{
		PatchType: admissionregistrationv1.PatchTypeJSONPatch,
		JSONPatch: &admissionregistrationv1.JSONPatch{Expression: expr},
	}
}

func pod(name string, labels map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: c + ":1"})
	}
	return p
}

func TestApplyConfigurationAddsLabel(t *testing.T) {
	f := &fakePolicies{}
	f.maps = append(f.maps, newMAP("add-env", applyConfig(`Object{metadata: Object.metadata{labels: {"env": "test"}}}`)))
	f.mapbs = append(f.mapbs, newMAPBinding("add-env-binding", "add-env"))
	p := pod("web", map[string]string{"app": "web"}, "web")
	a := podCreate(p)
	if err := NewMutating(f.deps()).Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if a.Object != p {
		t.Fatal("the object must be mutated in place")
	}
	if want := map[string]string{"app": "web", "env": "test"}; !equalMaps(p.Labels, want) {
		t.Errorf("labels %v, want %v", p.Labels, want)
	}
	if len(p.Spec.Containers) != 1 || p.Spec.Containers[0].Image != "web:1" {
		t.Errorf("unrelated fields changed: %+v", p.Spec.Containers)
	}
}

func TestApplyConfigurationMergesNamedLists(t *testing.T) {
	f := &fakePolicies{}
	// The documentation's sidecar example, keyed by container name.
	f.maps = append(f.maps, newMAP("sidecar", applyConfig(`Object{
		spec: Object.spec{
			initContainers: [Object.spec.initContainers{name: "mesh-proxy", image: "mesh/proxy:v1.0.0", restartPolicy: "Always"}]
		}
	}`), applyConfig(`Object{spec: Object.spec{containers: [Object.spec.containers{name: "web", image: "web:2"}]}}`)))
	f.mapbs = append(f.mapbs, newMAPBinding("sidecar-binding", "sidecar"))
	p := pod("web", nil, "web", "log")
	if err := NewMutating(f.deps()).Admit(context.Background(), podCreate(p)); err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.InitContainers) != 1 || p.Spec.InitContainers[0].Image != "mesh/proxy:v1.0.0" ||
		p.Spec.InitContainers[0].RestartPolicy == nil || *p.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("initContainers %+v", p.Spec.InitContainers)
	}
	if len(p.Spec.Containers) != 2 || p.Spec.Containers[0].Image != "web:2" || p.Spec.Containers[1].Name != "log" {
		t.Errorf("containers %+v", p.Spec.Containers)
	}
}

func TestJSONPatchAddsLabel(t *testing.T) {
	f := &fakePolicies{}
	f.maps = append(f.maps, newMAP("team", jsonPatch(`[
		JSONPatch{op: "test", path: "/metadata/labels/app", value: "web"},
		JSONPatch{op: "add", path: "/metadata/labels/" + jsonpatch.escapeKey("example.com/team"), value: "a"}
	]`)))
	f.mapbs = append(f.mapbs, newMAPBinding("team-binding", "team"))
	m := NewMutating(f.deps())

	p := pod("web", map[string]string{"app": "web"}, "web")
	if err := m.Admit(context.Background(), podCreate(p)); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"app": "web", "example.com/team": "a"}; !equalMaps(p.Labels, want) {
		t.Errorf("labels %v, want %v", p.Labels, want)
	}

	// A failed test operation leaves the object alone, without error.
	other := pod("api", map[string]string{"app": "api"}, "api")
	if err := m.Admit(context.Background(), podCreate(other)); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"app": "api"}; !equalMaps(other.Labels, want) {
		t.Errorf("labels %v, want %v", other.Labels, want)
	}
}

func TestJSONPatchOnUnstructured(t *testing.T) {
	f := &fakePolicies{}
	f.maps = append(f.maps, newMAP("replicas", jsonPatch(`[JSONPatch{op: "replace", path: "/spec/replicas", value: 2}]`)))
	f.maps[0].Spec.MatchConstraints = deploymentRules()
	f.mapbs = append(f.mapbs, newMAPBinding("b", "replicas"))
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "default"},
		"spec":     map[string]any{"replicas": int64(5)},
	}}
	a := deploymentCreate(deployment("default", "web", 5))
	a.Object = u
	if err := NewMutating(f.deps()).Admit(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); got != 2 {
		t.Errorf("replicas %d, want 2", got)
	}
}

func TestMutationErrorsAsUpstream(t *testing.T) {
	f := &fakePolicies{}
	f.maps = append(f.maps, newMAP("broken", applyConfig(`Object{metadata: Object.metadata{labels: {"n": string(object.spec.missing)}}}`)))
	f.mapbs = append(f.mapbs, newMAPBinding("broken-binding", "broken"))
	m := NewMutating(f.deps())
	se := statusOf(t, m.Admit(context.Background(), podCreate(pod("web", nil, "web"))))
	want := `policy 'broken' with binding 'broken-binding' denied request: expression 'Object{metadata: Object.metadata{labels: {"n": string(object.spec.missing)}}}' resulted in error: no such key: missing`
	if se.ErrStatus.Message != want {
		t.Errorf("message\n got %q\nwant %q", se.ErrStatus.Message, want)
	}
	// Upstream keeps Forbidden's code and reports the error's reason.
	if se.ErrStatus.Code != http.StatusForbidden || se.ErrStatus.Reason != metav1.StatusReasonInvalid {
		t.Errorf("code %d reason %s", se.ErrStatus.Code, se.ErrStatus.Reason)
	}

	f.maps[0].Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	f.maps[0].ResourceVersion = "2"
	if err := m.Admit(context.Background(), podCreate(pod("web", nil, "web"))); err != nil {
		t.Errorf("Ignore: %v", err)
	}
}

func TestReinvocationIfNeeded(t *testing.T) {
	f := &fakePolicies{}
	// "a-copy" runs first and copies the label "b-set" adds after it; only
	// with reinvocationPolicy IfNeeded does it see that label.
	first := newMAP("a-copy", applyConfig(`Object{metadata: Object.metadata{labels: {"copy": "seen-" + (has(object.metadata.labels) && "b" in object.metadata.labels ? object.metadata.labels["b"] : "none")}}}`))
	first.Spec.ReinvocationPolicy = admissionregistrationv1.IfNeededReinvocationPolicy
	f.maps = append(f.maps, first, newMAP("b-set", applyConfig(`Object{metadata: Object.metadata{labels: {"b": "yes"}}}`)))
	f.mapbs = append(f.mapbs, newMAPBinding("a", "a-copy"), newMAPBinding("b", "b-set"))
	p := pod("web", nil, "web")
	if err := NewMutating(f.deps()).Admit(context.Background(), podCreate(p)); err != nil {
		t.Fatal(err)
	}
	if p.Labels["copy"] != "seen-yes" {
		t.Errorf("labels %v: the IfNeeded policy was not reinvoked", p.Labels)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestApplyConfigurationRefusesAtomicFields(t *testing.T) {
	f := &fakePolicies{}
	f.maps = append(f.maps, newMAP("tolerate", applyConfig(`Object{spec: Object.spec{tolerations: [Object.spec.tolerations{key: "k", operator: "Exists"}]}}`)))
	f.mapbs = append(f.mapbs, newMAPBinding("tolerate-binding", "tolerate"))
	se := statusOf(t, NewMutating(f.deps()).Admit(context.Background(), podCreate(pod("web", nil, "web"))))
	want := "policy 'tolerate' with binding 'tolerate-binding' denied request: error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: .spec.tolerations"
	if se.ErrStatus.Message != want {
		t.Errorf("message\n got %q\nwant %q", se.ErrStatus.Message, want)
	}
}

func TestApplyConfigurationWithoutSchemaMergesByName(t *testing.T) {
	f := &fakePolicies{}
	f.maps = append(f.maps, newMAP("image", applyConfig(`Object{spec: Object.spec{containers: [Object.spec.containers{name: "web", image: "web:2"}]}}`)))
	f.mapbs = append(f.mapbs, newMAPBinding("b", "image"))
	d := f.deps()
	d.TypeConverter = nil
	p := pod("web", nil, "web", "log")
	if err := NewMutating(d).Admit(context.Background(), podCreate(p)); err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Containers) != 2 || p.Spec.Containers[0].Image != "web:2" || p.Spec.Containers[1].Image != "log:1" {
		t.Errorf("containers %+v", p.Spec.Containers)
	}
}

func TestApplyConfigurationUnknownField(t *testing.T) {
	f := &fakePolicies{}
	f.maps = append(f.maps, newMAP("bad", applyConfig(`Object{spec: Object.spec{nope: 1}}`)))
	f.mapbs = append(f.mapbs, newMAPBinding("b", "bad"))
	se := statusOf(t, NewMutating(f.deps()).Admit(context.Background(), podCreate(pod("web", nil, "web"))))
	if want := "policy 'bad' with binding 'b' denied request: error applying patch: failed to convert patch object to typed object: .spec.nope: field not declared in schema"; se.ErrStatus.Message != want {
		t.Errorf("message\n got %q\nwant %q", se.ErrStatus.Message, want)
	}
}

// TestChainReinvocationAfterLaterPlugin: a plugin after the policies (the
// webhooks, in Skiff's chain) that changes the object brings an IfNeeded
// policy back in the chain's second pass.
func TestChainReinvocationAfterLaterPlugin(t *testing.T) {
	f := &fakePolicies{}
	first := newMAP("a-copy", applyConfig(`Object{metadata: Object.metadata{labels: {"copy": "seen-" + (has(object.metadata.labels) && "late" in object.metadata.labels ? object.metadata.labels["late"] : "none")}}}`))
	first.Spec.ReinvocationPolicy = admissionregistrationv1.IfNeededReinvocationPolicy
	f.maps = append(f.maps, first)
	f.mapbs = append(f.mapbs, newMAPBinding("a", "a-copy"))
	late := lateLabel{}
	chain := &admission.Chain{Mutators: []admission.Mutator{NewMutating(f.deps()), late}}
	p := pod("web", nil, "web")
	if err := chain.Admit(context.Background(), podCreate(p)); err != nil {
		t.Fatal(err)
	}
	if p.Labels["copy"] != "seen-yes" {
		t.Errorf("labels %v: the IfNeeded policy was not reinvoked after a later plugin's change", p.Labels)
	}
}

// lateLabel sets the label "late" once, as an idempotent plugin would.
type lateLabel struct{}

func (lateLabel) Name() string { return "Late" }

func (lateLabel) Admit(_ context.Context, a *admission.Attributes) error {
	p := a.Object.(*corev1.Pod)
	if p.Labels["late"] == "" {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		p.Labels["late"] = "yes"
		// A webhook changing the object asks for the second pass.
		a.Reinvocation.SetShouldReinvoke()
	}
	return nil
}
