package objcache

import (
	"context"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func configMap(ns, name, v string) *v1.ConfigMap {
	return &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string]string{"k": v}}
}

// changes records onChange calls.
type changes struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *changes) record(ns, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[ns+"/"+name]++
}

func (c *changes) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

func run(t *testing.T, objs ...runtime.Object) (*Manager[*v1.ConfigMap], *fake.Clientset, *changes) {
	t.Helper()
	client := fake.NewClientset(objs...)
	ch := &changes{seen: map[string]int{}}
	m := ForConfigMaps(client, ch.record)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	return m, client, ch
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestGetListsOnlyByName(t *testing.T) {
	m, client, _ := run(t, configMap("ns", "a", "1"), configMap("ns", "b", "2"))
	m.SetPodRefs("pod1", "ns", []string{"a"})
	cm, err := m.Get("ns", "a")
	if err != nil || cm.Data["k"] != "1" {
		t.Fatalf("Get = %v, %v", cm, err)
	}
	if _, err := m.Get("ns", "b"); err == nil || apierrors.IsNotFound(err) {
		t.Errorf("unreferenced object: err = %v, want a not-referenced error", err)
	}
	for _, a := range client.Actions() {
		var sel string
		switch a := a.(type) {
		case k8stesting.ListAction:
			sel = a.GetListRestrictions().Fields.String()
		case k8stesting.WatchAction:
			sel = a.GetWatchRestrictions().Fields.String()
		default:
			continue
		}
		if a.GetNamespace() != "ns" || sel != "metadata.name=a" {
			t.Errorf("%s in %q with fields %q, want namespace ns and metadata.name=a", a.GetVerb(), a.GetNamespace(), sel)
		}
	}
}

func TestMissingObjectAppearsAndUpdates(t *testing.T) {
	m, client, ch := run(t)
	m.SetPodRefs("pod1", "ns", []string{"late"})
	if _, err := m.Get("ns", "late"); !apierrors.IsNotFound(err) {
		t.Fatalf("Get before creation: err = %v, want NotFound", err)
	}
	ctx := context.Background()
	if _, err := client.CoreV1().ConfigMaps("ns").Create(ctx, configMap("ns", "late", "1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "creation to be seen", func() bool { _, err := m.Get("ns", "late"); return err == nil })
	eventually(t, "onChange after creation", func() bool { return ch.count("ns/late") >= 1 })

	before := ch.count("ns/late")
	if _, err := client.CoreV1().ConfigMaps("ns").Update(ctx, configMap("ns", "late", "2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "update to be seen", func() bool { cm, err := m.Get("ns", "late"); return err == nil && cm.Data["k"] == "2" })
	eventually(t, "onChange after update", func() bool { return ch.count("ns/late") > before })

	if err := client.CoreV1().ConfigMaps("ns").Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deletion to be seen", func() bool { _, err := m.Get("ns", "late"); return apierrors.IsNotFound(err) })
}

func TestReferenceCounting(t *testing.T) {
	m, _, _ := run(t, configMap("ns", "shared", "1"), configMap("ns", "own", "1"))
	m.SetPodRefs("pod1", "ns", []string{"shared", "own"})
	m.SetPodRefs("pod2", "ns", []string{"shared"})
	if m.Len() != 2 {
		t.Fatalf("Len = %d, want 2", m.Len())
	}
	// pod1 stops using "own": only "shared" stays.
	m.SetPodRefs("pod1", "ns", []string{"shared"})
	if _, err := m.Get("ns", "own"); err == nil {
		t.Error("own is still served after its last reference went")
	}
	m.RemovePod("pod1")
	if _, err := m.Get("ns", "shared"); err != nil {
		t.Errorf("shared after one of two pods went: %v", err)
	}
	m.RemovePod("pod2")
	if m.Len() != 0 {
		t.Errorf("Len = %d after every pod went, want 0", m.Len())
	}
	// Re-referencing starts a fresh informer.
	m.SetPodRefs("pod3", "ns", []string{"shared"})
	if _, err := m.Get("ns", "shared"); err != nil {
		t.Errorf("shared after re-reference: %v", err)
	}
}

func TestRefsBeforeRun(t *testing.T) {
	client := fake.NewClientset(configMap("ns", "a", "1"))
	m := ForConfigMaps(client, nil)
	m.SetPodRefs("pod1", "ns", []string{"a"})
	if _, err := m.Get("ns", "a"); err == nil {
		t.Error("Get succeeded before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	eventually(t, "informer started by Run", func() bool { _, err := m.Get("ns", "a"); return err == nil })
	cancel()
	<-done
}
