package garbagecollector

import (
	"io"
	"log/slog"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	fakediscovery "k8s.io/client-go/discovery/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
)

// growingDiscovery serves whatever resources the test lists at the time.
type growingDiscovery struct {
	*fakediscovery.FakeDiscovery
	lists []*metav1.APIResourceList
}

func (d *growingDiscovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	return d.lists, nil
}

// An owner of a kind served after the collector started (a new custom
// resource) is looked up, not taken for dangling.
func TestOwnerOfANewlyServedKindIsNotDangling(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	owner := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "example.com/v1", Kind: "Widget"},
		ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "default", UID: "w-uid"},
	}
	disc := &growingDiscovery{FakeDiscovery: &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}}
	c := New(metadatafake.NewSimpleMetadataClient(scheme, owner), disc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { c.attemptToDelete.ShutDown(); c.attemptToOrphan.ShutDown() })
	if _, err := c.resources(); err != nil {
		t.Fatal(err)
	}

	disc.lists = []*metav1.APIResourceList{{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
		{Name: "widgets", Namespaced: true, Kind: "Widget", Verbs: metav1.Verbs{"delete", "get", "list", "watch"}},
	}}}
	ref := metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: types.UID("w-uid")}
	exists, _, err := c.ownerState(t.Context(), "default", ref)
	if err != nil || !exists {
		t.Fatalf("owner of a new kind: exists=%v err=%v", exists, err)
	}
}

// An owner deleted before any informer watched its kind sends the
// collector no event: the dependent is checked again until it is
// collected.
func TestDependentOfAnUnwatchedOwnerIsRechecked(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	owner := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "example.com/v1", Kind: "Widget"},
		ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "default", UID: "w-uid"},
	}
	ref := metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: "w", UID: "w-uid"}
	dep := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "dep", Namespace: "default", UID: "dep-uid", OwnerReferences: []metav1.OwnerReference{ref}},
	}
	disc := &growingDiscovery{FakeDiscovery: &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}, lists: []*metav1.APIResourceList{
		{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
			{Name: "widgets", Namespaced: true, Kind: "Widget", Verbs: metav1.Verbs{"delete", "get", "list", "watch"}},
		}},
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "configmaps", Namespaced: true, Kind: "ConfigMap", Verbs: metav1.Verbs{"delete", "get", "list", "watch"}},
		}},
	}}
	client := metadatafake.NewSimpleMetadataClient(scheme, owner, dep)
	c := New(client, disc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { c.attemptToDelete.ShutDown(); c.attemptToOrphan.ShutDown() })
	if _, err := c.resources(); err != nil {
		t.Fatal(err)
	}
	prev := unobservedRecheck
	unobservedRecheck = 0
	t.Cleanup(func() { unobservedRecheck = prev })

	c.observe(configmaps, dep) // the ConfigMap informer sees only the dependent
	if err := c.processDelete(t.Context(), "dep-uid"); err != nil {
		t.Fatal(err)
	}
	if got := c.attemptToDelete.Len(); got != 1 {
		t.Fatalf("dependent of a live, unobserved owner: queue length %d, want it requeued", got)
	}
	widgets := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	if err := client.Resource(widgets).Namespace("default").Delete(t.Context(), "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.processDelete(t.Context(), "dep-uid"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Resource(configmaps).Namespace("default").Get(t.Context(), "dep", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dependent of the deleted owner: get err %v, want NotFound", err)
	}
}
