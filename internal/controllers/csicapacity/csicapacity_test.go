package csicapacity

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
	"github.com/skiff-dev/skiff/internal/controllers/csiprovisioner"
)

const (
	testDriver = "disk.csi.example.com"
	zoneKey    = "topology.example.com/zone"
)

// fakeCapacity is the drivers' controller services: capacity by zone.
type fakeCapacity struct {
	mu       sync.Mutex
	capacity map[string]int64
	maxSize  int64 // 0: not reported
	// unreachable nodes fail as a kubelet without the driver does.
	unreachable map[string]bool
	err         error // the driver's answer, when set
	calls       []capacityCall
}

type capacityCall struct {
	node, driver string
	req          *csipb.GetCapacityRequest
}

func (f *fakeCapacity) GetCapacity(_ context.Context, node, driver string, req *csipb.GetCapacityRequest) (*csipb.GetCapacityResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, capacityCall{node, driver, proto.Clone(req).(*csipb.GetCapacityRequest)})
	if f.unreachable[node] {
		return nil, fmt.Errorf("node %s: driver name %s not found in the list of registered CSI drivers", node, driver)
	}
	if f.err != nil {
		return nil, f.err
	}
	resp := &csipb.GetCapacityResponse{AvailableCapacity: f.capacity[req.GetAccessibleTopology().GetSegments()[zoneKey]]}
	if f.maxSize > 0 {
		resp.MaximumVolumeSize = wrapperspb.Int64(f.maxSize)
	}
	return resp, nil
}

func (f *fakeCapacity) set(zone string, bytes int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.capacity[zone] = bytes
}

func (f *fakeCapacity) takeCalls() []capacityCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func node(name, zone string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{zoneKey: zone}}}
}

// csiNode registers the drivers on the node with the zone as topology;
// without topology when topo is false.
func csiNode(name string, topo bool, drivers ...string) *storagev1.CSINode {
	cn := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, d := range drivers {
		e := storagev1.CSINodeDriver{Name: d, NodeID: "id-" + name}
		if topo {
			e.TopologyKeys = []string{zoneKey}
		}
		cn.Spec.Drivers = append(cn.Spec.Drivers, e)
	}
	return cn
}

func csiDriver(name string, capacity bool) *storagev1.CSIDriver {
	return &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.CSIDriverSpec{StorageCapacity: ptr.To(capacity)}}
}

func class(name, driver string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: driver,
		Parameters:        map[string]string{"type": name, "csi.storage.k8s.io/fstype": "xfs"},
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
}

// immediateClass is a class of driver with Immediate binding.
func immediateClass(name, driver string) *storagev1.StorageClass {
	sc := class(name, driver)
	sc.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
	return sc
}

// cluster is three nodes in two zones with the driver (d, or one that
// tracks capacity when nil), one with it but without topology, and one
// with another driver only.
func cluster(d *storagev1.CSIDriver) []runtime.Object {
	if d == nil {
		d = csiDriver(testDriver, true)
	}
	return []runtime.Object{
		node("n1", "z1"), node("n2", "z1"), node("n3", "z2"), node("n4", "z3"), node("n5", "z4"),
		csiNode("n1", true, testDriver), csiNode("n2", true, testDriver), csiNode("n3", true, testDriver),
		csiNode("n4", false, testDriver), csiNode("n5", true, "other.csi.example.com"),
		d, class("fast", testDriver), class("slow", testDriver),
		class("foreign", "other.csi.example.com"),
		immediateClass("now", testDriver), // no capacity: the scheduler does not use it
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// nameGenerator gives created objects a name from their generateName, as
// the API server does and the fake clientset does not.
func nameGenerator(client *fake.Clientset) {
	n := 0
	var mu sync.Mutex
	client.PrependReactor("create", "csistoragecapacities", func(a clienttesting.Action) (bool, runtime.Object, error) {
		o := a.(clienttesting.CreateAction).GetObject().(*storagev1.CSIStorageCapacity)
		if o.Name == "" {
			mu.Lock()
			n++
			o.Name = fmt.Sprintf("%s%05d", o.GenerateName, n)
			o.UID = types.UID("uid-" + o.Name)
			mu.Unlock()
		}
		return false, nil, nil
	})
}

// newDirect builds the controller with objs in its caches (and the API),
// for calling sync directly.
func newDirect(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, informers.SharedInformerFactory, *fakeCapacity) {
	t.Helper()
	client := fake.NewClientset(objs...)
	nameGenerator(client)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, quiet())
	controllertest.Seed(t, factory, objs...)
	f := &fakeCapacity{capacity: map[string]int64{"z1": 10 << 30, "z2": 20 << 30}}
	c.csi = f
	t.Cleanup(c.queue.ShutDown)
	return c, client, factory, f
}

// published lists the objects in kube-system by "class zone".
func published(t *testing.T, client *fake.Clientset) map[string]storagev1.CSIStorageCapacity {
	t.Helper()
	list, err := client.StorageV1().CSIStorageCapacities(Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]storagev1.CSIStorageCapacity{}
	for _, csc := range list.Items {
		k := csc.StorageClassName + " " + csc.NodeTopology.MatchLabels[zoneKey]
		if _, dup := out[k]; dup {
			t.Errorf("two objects for %s", k)
		}
		out[k] = csc
	}
	return out
}

func keysOf(m map[string]storagev1.CSIStorageCapacity) []string {
	k := slices.Collect(maps.Keys(m))
	sort.Strings(k)
	return k
}

func countActions(client *fake.Clientset, verb string) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == "csistoragecapacities" {
			n++
		}
	}
	return n
}

func TestPublishesOnePerClassAndSegment(t *testing.T) {
	c, client, _, f := newDirect(t, cluster(nil)...)
	f.maxSize = 1 << 30
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	got := published(t, client)
	if want := []string{"fast z1", "fast z2", "slow z1", "slow z2"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("objects = %v, want %v", keysOf(got), want)
	}
	csc := got["fast z1"]
	if csc.GenerateName != "csisc-" || csc.Namespace != "kube-system" ||
		!maps.Equal(csc.Labels, map[string]string{DriverLabel: testDriver, ManagedByLabel: ManagedBy}) {
		t.Errorf("metadata = %+v", csc.ObjectMeta)
	}
	if !maps.Equal(csc.NodeTopology.MatchLabels, map[string]string{zoneKey: "z1"}) || len(csc.NodeTopology.MatchExpressions) != 0 {
		t.Errorf("node topology = %v", csc.NodeTopology)
	}
	if csc.Capacity == nil || csc.Capacity.Value() != 10<<30 || csc.MaximumVolumeSize == nil || csc.MaximumVolumeSize.Value() != 1<<30 {
		t.Errorf("capacity = %v, max = %v", csc.Capacity, csc.MaximumVolumeSize)
	}
	if q := got["slow z2"].Capacity; q == nil || q.Value() != 20<<30 {
		t.Errorf("slow z2 capacity = %v", q)
	}

	calls := f.takeCalls()
	if len(calls) != 4 {
		t.Fatalf("GetCapacity calls = %d, want one per class and segment", len(calls))
	}
	for _, call := range calls {
		zone := call.req.GetAccessibleTopology().GetSegments()[zoneKey]
		if want := map[string]string{"z1": "n1", "z2": "n3"}[zone]; call.node != want || call.driver != testDriver {
			t.Errorf("call for %s on %s/%s, want node %s", zone, call.node, call.driver, want)
		}
		if p := call.req.Parameters; len(p) != 1 || (p["type"] != "fast" && p["type"] != "slow") {
			t.Errorf("parameters = %v, want the class's without reserved ones", p)
		}
		vc := call.req.GetVolumeCapabilities()
		if len(vc) != 1 || vc[0].GetMount() == nil {
			t.Errorf("capabilities = %v, want a mount", vc)
		}
	}

	// Nothing changed: no more objects, no writes.
	creates := countActions(client, "create")
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	if n := len(published(t, client)); n != 4 {
		t.Errorf("%d objects after a second sync, want 4", n)
	}
	if countActions(client, "create") != creates || countActions(client, "update") != 0 || countActions(client, "delete") != 0 {
		t.Errorf("second sync wrote: %v", client.Actions())
	}
}

func TestUpdatesWhenTheCapacityChanges(t *testing.T) {
	c, client, _, f := newDirect(t, cluster(nil)...)
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	before := published(t, client)
	f.set("z1", 3<<30)
	f.maxSize = 1 << 30
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	after := published(t, client)
	for _, k := range []string{"fast z1", "slow z1"} {
		if after[k].Name != before[k].Name {
			t.Errorf("%s replaced (%s → %s), want updated", k, before[k].Name, after[k].Name)
		}
		if q := after[k].Capacity; q == nil || q.Value() != 3<<30 {
			t.Errorf("%s capacity = %v, want 3Gi", k, q)
		}
		if q := after[k].MaximumVolumeSize; q == nil || q.Value() != 1<<30 {
			t.Errorf("%s maximum volume size = %v, want 1Gi", k, q)
		}
	}
	if n := countActions(client, "update"); n != 4 {
		t.Errorf("%d updates, want 4 (the maximum size is new everywhere)", n)
	}
}

func TestDeletesStaleObjects(t *testing.T) {
	c, client, factory, f := newDirect(t, cluster(nil)...)
	ctx := t.Context()
	if err := c.sync(ctx, testDriver); err != nil {
		t.Fatal(err)
	}
	// A class goes away.
	slow, _ := c.classes.Get("slow")
	if err := factory.Storage().V1().StorageClasses().Informer().GetIndexer().Delete(slow); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(ctx, testDriver); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(published(t, client)); !slices.Equal(got, []string{"fast z1", "fast z2"}) {
		t.Errorf("after deleting class slow: %v", got)
	}
	// A segment goes away: n3 moves to z1.
	controllertest.Seed(t, factory, node("n3", "z1"))
	if err := c.sync(ctx, testDriver); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(published(t, client)); !slices.Equal(got, []string{"fast z1"}) {
		t.Errorf("after zone z2 emptied: %v", got)
	}
	// The driver stops tracking capacity.
	controllertest.Seed(t, factory, csiDriver(testDriver, false))
	f.takeCalls()
	if err := c.sync(ctx, testDriver); err != nil {
		t.Fatal(err)
	}
	if got := published(t, client); len(got) != 0 {
		t.Errorf("after storageCapacity off: %v", keysOf(got))
	}
	if calls := f.takeCalls(); len(calls) != 0 {
		t.Errorf("GetCapacity called for a driver not tracking capacity: %v", calls)
	}
}

func TestDeletedDriverLosesItsObjects(t *testing.T) {
	c, client, factory, _ := newDirect(t, cluster(nil)...)
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	d, _ := c.drivers.Get(testDriver)
	if err := factory.Storage().V1().CSIDrivers().Informer().GetIndexer().Delete(d); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	if got := published(t, client); len(got) != 0 {
		t.Errorf("objects of a deleted driver: %v", keysOf(got))
	}
}

func TestExternalDriverIsIgnored(t *testing.T) {
	d := csiDriver(testDriver, true)
	d.Annotations = map[string]string{csiprovisioner.ModeAnnotation: csiprovisioner.ModeExternal}
	// The sidecar's own object is not ours to touch.
	sidecars := &storagev1.CSIStorageCapacity{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "csisc-sidecar",
			Labels: map[string]string{DriverLabel: testDriver, ManagedByLabel: "external-provisioner"}},
		StorageClassName: "fast", NodeTopology: &metav1.LabelSelector{MatchLabels: map[string]string{zoneKey: "z1"}},
	}
	objs := append(cluster(d), sidecars)
	c, client, _, f := newDirect(t, objs...)
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	if calls := f.takeCalls(); len(calls) != 0 {
		t.Errorf("GetCapacity called for an external driver: %v", calls)
	}
	if got := published(t, client); len(got) != 1 || got["fast z1"].Name != "csisc-sidecar" {
		t.Errorf("objects = %v, want only the sidecar's", keysOf(got))
	}
}

func TestGetCapacityFailures(t *testing.T) {
	c, client, _, f := newDirect(t, cluster(nil)...)
	// n1 does not reach the driver: n2, in the same zone, answers.
	f.unreachable = map[string]bool{"n1": true}
	if err := c.sync(t.Context(), testDriver); err != nil {
		t.Fatal(err)
	}
	var z1Nodes []string
	for _, call := range f.takeCalls() {
		if call.req.GetAccessibleTopology().GetSegments()[zoneKey] == "z1" {
			z1Nodes = append(z1Nodes, call.node)
		}
	}
	if !slices.Equal(z1Nodes, []string{"n1", "n2", "n1", "n2"}) {
		t.Errorf("z1 calls went to %v, want n1 then n2 for each class", z1Nodes)
	}
	if n := len(published(t, client)); n != 4 {
		t.Fatalf("%d objects, want 4", n)
	}

	// The driver's own error is the answer: no other node is asked, the
	// objects stay as they were and the sync fails, to be retried.
	f.unreachable = nil
	f.err = status.Error(codes.Unavailable, "backend down")
	f.set("z1", 1)
	err := c.sync(t.Context(), testDriver)
	if err == nil || status.Code(err) != codes.Unavailable {
		t.Errorf("sync = %v, want the driver's error", err)
	}
	if calls := f.takeCalls(); len(calls) != 4 {
		t.Errorf("%d calls, want one per item", len(calls))
	}
	if q := published(t, client)["fast z1"].Capacity; q == nil || q.Value() != 10<<30 {
		t.Errorf("capacity after a failure = %v, want the old one", q)
	}
}

// TestRunReactsAndPolls runs the controller on started informers: it
// publishes on its own, republishes when the driver's capacity changes
// after an interval, and drops a deleted class's objects.
func TestRunReactsAndPolls(t *testing.T) {
	ctx := t.Context()
	client := fake.NewClientset(cluster(nil)...)
	nameGenerator(client)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, quiet())
	f := &fakeCapacity{capacity: map[string]int64{"z1": 10 << 30, "z2": 20 << 30}}
	c.csi = f
	clk := testingclock.NewFakeClock(time.Now())
	c.clock = clk
	controllertest.Run(t, ctx, factory, c.Run)

	capacityOf := func(k string) int64 {
		csc, ok := published(t, client)[k]
		if !ok || csc.Capacity == nil {
			return -1
		}
		return csc.Capacity.Value()
	}
	controllertest.WaitFor(t, "the objects", func() bool { return len(published(t, client)) == 4 })

	f.set("z2", 5<<30)
	controllertest.WaitFor(t, "the poll ticker", clk.HasWaiters)
	clk.Step(c.Interval)
	controllertest.WaitFor(t, "the new capacity", func() bool { return capacityOf("fast z2") == 5<<30 && capacityOf("slow z2") == 5<<30 })

	if err := client.StorageV1().StorageClasses().Delete(ctx, "slow", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "class slow's objects to go", func() bool {
		return slices.Equal(keysOf(published(t, client)), []string{"fast z1", "fast z2"})
	})

	// An object deleted by someone else comes back.
	gone := published(t, client)["fast z1"].Name
	if err := client.StorageV1().CSIStorageCapacities(Namespace).Delete(ctx, gone, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "the object to be published again", func() bool {
		csc, ok := published(t, client)["fast z1"]
		return ok && csc.Name != gone
	})
}
