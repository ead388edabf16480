package controllerutil

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/fake"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// revisionEnv ensures revisions of one DaemonSet against a fake client,
// with a lister refreshed from the client before each call.
type revisionEnv struct {
	t      *testing.T
	client *fake.Clientset
	ds     *appsv1.DaemonSet
}

func (e *revisionEnv) ensure() {
	e.t.Helper()
	ctx := context.Background()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	list, err := e.client.AppsV1().ControllerRevisions("ns").List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range list.Items {
		_ = idx.Add(&list.Items[i])
	}
	hash := TemplateHash(&e.ds.Spec.Template, nil)
	gvk := appsv1.SchemeGroupVersion.WithKind("DaemonSet")
	if err := EnsureRevision(ctx, e.client, listersappsv1.NewControllerRevisionLister(idx), e.ds, gvk, e.ds.Spec.Template, hash); err != nil {
		e.t.Fatal(err)
	}
}

func (e *revisionEnv) bySelector(sel string) []appsv1.ControllerRevision {
	e.t.Helper()
	list, err := e.client.AppsV1().ControllerRevisions("ns").List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		e.t.Fatal(err)
	}
	return list.Items
}

// TestRevisionLifecycleAsConformance replays the conformance spec
// "ControllerRevision should manage the lifecycle of a ControllerRevision"
// against EnsureRevision, with upstream's DaemonSet controller behaviour as
// the reference: revisions carry the template labels, a revision with the
// current template's data is current whatever its name, and a new template
// gets the next number.
func TestRevisionLifecycleAsConformance(t *testing.T) {
	dsLabels := map[string]string{"daemonset-name": "e2e-ds"}
	sel := labels.SelectorFromSet(dsLabels).String()
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-ds", Namespace: "ns", UID: "ds-uid"},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: dsLabels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "httpd"}}},
		}},
	}
	e := &revisionEnv{t: t, client: fake.NewClientset(), ds: ds}
	ctx := context.Background()
	revs := e.client.AppsV1().ControllerRevisions("ns")

	e.ensure()
	initial := e.bySelector(sel)
	if len(initial) != 1 || initial[0].Labels[appsv1.ControllerRevisionHashLabelKey] == "" || initial[0].Revision != 1 {
		t.Fatalf("revisions by the DaemonSet's selector = %+v, want one, hash-labelled, revision 1", initial)
	}

	// The spec creates a revision by hand: the same data, another name.
	manual := initial[0].DeepCopy()
	manual.ResourceVersion, manual.Name, manual.Revision = "", "e2e-ds-manual", 2
	manual.Labels = map[string]string{"daemonset-name": "e2e-ds", appsv1.ControllerRevisionHashLabelKey: "manual"}
	if _, err := revs.Create(ctx, manual, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.ensure()
	if n := len(e.bySelector(sel)); n != 2 {
		t.Fatalf("%d revisions after the manual one, want 2", n)
	}
	// Deleting the first leaves the manual one current: none is recreated.
	if err := revs.Delete(ctx, initial[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.ensure()
	if got := e.bySelector(sel); len(got) != 1 || got[0].Name != "e2e-ds-manual" {
		t.Fatalf("revisions after deleting the first = %v, want only the manual one", got)
	}
	// A new template is revision 3.
	ds.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	e.ensure()
	if err := revs.Delete(ctx, "e2e-ds-manual", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got := e.bySelector(sel)
	if len(got) != 1 || got[0].Revision != 3 {
		t.Fatalf("revisions = %+v, want one with revision 3", got)
	}

	// Going back to the first template renumbers the revision holding it.
	ds.Spec.Template.Spec.TerminationGracePeriodSeconds = nil
	e.ensure()
	ds.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	e.ensure()
	if got := e.bySelector(sel); len(got) != 2 {
		t.Fatalf("%d revisions after a rollback, want 2", len(got))
	}
	for _, r := range e.bySelector(sel) {
		if r.Name == got[0].Name && r.Revision != 5 {
			t.Errorf("rolled-back-to revision %s is %d, want 5", r.Name, r.Revision)
		}
	}
}

// TestRevisionDataSurvivesPatches is the conformance spec's label patch:
// a strategic merge patch re-encodes the whole object, data included, and
// the server refuses any byte change to the immutable data. Data written
// in struct order failed that way.
func TestRevisionDataSurvivesPatches(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox", Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
		}}},
	}
	data, err := revisionData(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	rev := appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"}, Data: runtime.RawExtension{Raw: data}, Revision: 1}
	orig, err := json.Marshal(rev)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := strategicpatch.StrategicMergePatch(orig, []byte(`{"metadata":{"labels":{"r":"patched"}}}`), appsv1.ControllerRevision{})
	if err != nil {
		t.Fatal(err)
	}
	var out appsv1.ControllerRevision
	if err := json.Unmarshal(patched, &out); err != nil {
		t.Fatal(err)
	}
	if out.Labels["r"] != "patched" {
		t.Fatalf("patch not applied: %v", out.Labels)
	}
	if !bytes.Equal(out.Data.Raw, data) {
		t.Errorf("a label patch changed data:\n before %s\n after  %s", data, out.Data.Raw)
	}
}

// TestRevisionDataMatchesUpstreamBytes pins the bytes upstream's DaemonSet
// and StatefulSet controllers write (their getPatch), which clients compare
// byte for byte: "$patch" inside the template, keys sorted.
func TestRevisionDataMatchesUpstreamBytes(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
	got, err := revisionData(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"image":"i","name":"c","resources":{}}]}}}}`
	if string(got) != want {
		t.Errorf("revision data\n got %s\nwant %s", got, want)
	}
}
