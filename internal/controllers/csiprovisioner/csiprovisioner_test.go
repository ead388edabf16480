package csiprovisioner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
	"github.com/skiff-dev/skiff/internal/controllers/persistentvolume"
)

const testDriver = "disk.csi.example.com"

// fakeCSI is the drivers' controller services: it records the calls and
// answers as a driver that makes volumes where it is asked to.
type fakeCSI struct {
	mu        sync.Mutex
	creates   []call[*csipb.CreateVolumeRequest]
	deletes   []call[*csipb.DeleteVolumeRequest]
	createErr error
	// blankClones answers clones without their content source.
	blankClones bool
	// unreachable nodes fail as a kubelet without the driver does.
	unreachable map[string]bool
}

type call[T any] struct {
	node, driver string
	req          T
}

func (f *fakeCSI) CreateVolume(_ context.Context, node, driver string, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, call[*csipb.CreateVolumeRequest]{node, driver, proto.Clone(req).(*csipb.CreateVolumeRequest)})
	if f.unreachable[node] {
		return nil, fmt.Errorf("node %s: driver name %s not found in the list of registered CSI drivers", node, driver)
	}
	if f.createErr != nil {
		return nil, f.createErr
	}
	vol := &csipb.Volume{VolumeId: "handle-" + req.Name, CapacityBytes: req.CapacityRange.GetRequiredBytes(),
		VolumeContext: map[string]string{"pool": "p1"}}
	if !f.blankClones {
		vol.ContentSource = req.GetVolumeContentSource()
	}
	if r := req.GetAccessibilityRequirements(); r != nil {
		vol.AccessibleTopology = r.Preferred[:1]
	}
	return &csipb.CreateVolumeResponse{Volume: vol}, nil
}

func (f *fakeCSI) DeleteVolume(_ context.Context, node, driver string, req *csipb.DeleteVolumeRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, call[*csipb.DeleteVolumeRequest]{node, driver, proto.Clone(req).(*csipb.DeleteVolumeRequest)})
	return nil
}

func (f *fakeCSI) calls() ([]call[*csipb.CreateVolumeRequest], []call[*csipb.DeleteVolumeRequest]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.creates), slices.Clone(f.deletes)
}

// eventLog records events.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (e *eventLog) Event(o runtime.Object, typ, reason, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	name := ""
	if m, ok := o.(metav1.Object); ok {
		name = m.GetName()
	}
	e.events = append(e.events, fmt.Sprintf("%s %s %s %s", name, typ, reason, msg))
}

func (e *eventLog) Eventf(o runtime.Object, typ, reason, f string, args ...any) {
	e.Event(o, typ, reason, fmt.Sprintf(f, args...))
}

func (e *eventLog) AnnotatedEventf(o runtime.Object, _ map[string]string, typ, reason, f string, args ...any) {
	e.Eventf(o, typ, reason, f, args...)
}

func (e *eventLog) find(substr string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.events, func(s string) bool { return strings.Contains(s, substr) })
}

func node(name, zone string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"topology.example.com/zone": zone}}}
}

func csiNode(name string, drivers ...string) *storagev1.CSINode {
	cn := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, d := range drivers {
		cn.Spec.Drivers = append(cn.Spec.Drivers, storagev1.CSINodeDriver{Name: d, NodeID: "id-" + name,
			TopologyKeys: []string{"topology.example.com/zone"}})
	}
	return cn
}

func class(mode storagev1.VolumeBindingMode) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: "fast"},
		Provisioner: testDriver,
		Parameters: map[string]string{"type": "ssd", fsTypeKey: "xfs",
			"csi.storage.k8s.io/node-stage-secret-name":       "${pvc.name}-stage",
			"csi.storage.k8s.io/node-stage-secret-namespace":  "${pvc.namespace}",
			"csi.storage.k8s.io/provisioner-secret-name":      "prov",
			"csi.storage.k8s.io/provisioner-secret-namespace": "kube-system",
		},
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		MountOptions:      []string{"noatime"},
		VolumeBindingMode: &mode,
	}
}

func claim(selected string) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data", UID: "u1", Annotations: map[string]string{}},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast"),
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}}},
	}
	if selected != "" {
		pvc.Annotations[annSelectedNode] = selected
	}
	return pvc
}

// provSecret is the class's provisioner secret.
var provSecret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "prov"},
	Data: map[string][]byte{"token": []byte("t0p")}}

func cluster() []runtime.Object {
	return []runtime.Object{node("n1", "z1"), node("n2", "z2"), csiNode("n1", testDriver), csiNode("n2", testDriver), provSecret}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestProvisionBindAndDelete runs the binder and the provisioner on one
// fake API: a claim gets a volume through its selected node's driver and
// binds; once the claim is gone the volume's storage and object go too.
func TestProvisionBindAndDelete(t *testing.T) {
	ctx := t.Context()
	objs := append(cluster(), class(storagev1.VolumeBindingWaitForFirstConsumer), claim("n2"))
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	binder := persistentvolume.New(client, factory, quiet())
	c := New(client, factory, quiet())
	f := &fakeCSI{}
	c.csi = f
	events := &eventLog{}
	c.recorder = events
	controllertest.Run(t, ctx, factory, func(ctx context.Context) {
		go binder.Run(ctx)
		c.Run(ctx)
	})

	controllertest.WaitFor(t, "the claim to bind", func() bool {
		pvc, err := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "data", metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == corev1.ClaimBound && pvc.Spec.VolumeName == "pvc-u1"
	})
	creates, _ := f.calls()
	if len(creates) == 0 {
		t.Fatal("CreateVolume was not called")
	}
	cr := creates[0]
	zone2 := map[string]string{"topology.example.com/zone": "z2"}
	if cr.node != "n2" || cr.driver != testDriver || cr.req.Name != "pvc-u1" || cr.req.CapacityRange.RequiredBytes != 2<<30 {
		t.Errorf("CreateVolume on %s/%s: %v", cr.node, cr.driver, cr.req)
	}
	if !maps.Equal(cr.req.Parameters, map[string]string{"type": "ssd"}) {
		t.Errorf("parameters = %v, want the reserved ones stripped", cr.req.Parameters)
	}
	vc := cr.req.VolumeCapabilities
	if len(vc) != 1 || vc[0].GetAccessMode().GetMode() != csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER ||
		vc[0].GetMount().GetFsType() != "xfs" || !slices.Equal(vc[0].GetMount().GetMountFlags(), []string{"noatime"}) {
		t.Errorf("capabilities = %v", vc)
	}
	if !maps.Equal(cr.req.Secrets, map[string]string{"token": "t0p"}) {
		t.Errorf("secrets = %v, want the provisioner secret's data", cr.req.Secrets)
	}
	if r := cr.req.AccessibilityRequirements; r == nil || len(r.Requisite) != 1 || !maps.Equal(r.Requisite[0].Segments, zone2) {
		t.Errorf("accessibility = %v, want the selected node's zone", r)
	}

	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-u1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := pv.Spec.CSI
	if src == nil || src.Driver != testDriver || src.VolumeHandle != "handle-pvc-u1" || src.FSType != "xfs" || src.VolumeAttributes["pool"] != "p1" {
		t.Errorf("CSI source = %+v", src)
	}
	if ref := src.NodeStageSecretRef; ref == nil || ref.Name != "data-stage" || ref.Namespace != "ns" || src.NodePublishSecretRef != nil {
		t.Errorf("secret refs = %+v, %+v", ref, src.NodePublishSecretRef)
	}
	if pv.Annotations[annDeletionSecretName] != "prov" || pv.Annotations[annDeletionSecretNamespace] != "kube-system" {
		t.Errorf("annotations = %v, want the deletion secret", pv.Annotations)
	}
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.Value() != 2<<30 {
		t.Errorf("capacity = %v", q.String())
	}
	if pv.Annotations[annProvisionedBy] != testDriver || !slices.Contains(pv.Finalizers, Finalizer) ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.StorageClassName != "fast" ||
		!slices.Equal(pv.Spec.MountOptions, []string{"noatime"}) || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != "u1" {
		t.Errorf("volume = %+v", pv)
	}
	aff := pv.Spec.NodeAffinity
	if aff == nil || len(aff.Required.NodeSelectorTerms) != 1 ||
		fmt.Sprint(aff.Required.NodeSelectorTerms[0].MatchExpressions) != "[{topology.example.com/zone In [z2]}]" {
		t.Errorf("node affinity = %+v", aff)
	}
	if !events.find("data Normal ProvisioningSucceeded Successfully provisioned volume pvc-u1") {
		t.Errorf("events = %v", events.events)
	}

	if err := client.CoreV1().PersistentVolumeClaims("ns").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "the volume to be deleted", func() bool {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-u1", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	_, deletes := f.calls()
	if len(deletes) == 0 || deletes[0].node != "n2" || deletes[0].req.VolumeId != "handle-pvc-u1" || deletes[0].req.Secrets["token"] != "t0p" {
		t.Errorf("DeleteVolume calls = %v, want the handle on the volume's node", deletes)
	}
}

// newDirect builds the controller with objs in its caches, for calling
// its syncs directly.
func newDirect(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, *fakeCSI, *eventLog) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, quiet())
	controllertest.Seed(t, factory, objs...)
	f := &fakeCSI{}
	c.csi = f
	events := &eventLog{}
	c.recorder = events
	t.Cleanup(c.queue.ShutDown)
	return c, client, f, events
}

// handed is a claim the binder has handed to the driver.
func handed(pvc *corev1.PersistentVolumeClaim) *corev1.PersistentVolumeClaim {
	pvc.Annotations[annStorageProvisioner] = testDriver
	return pvc
}

func TestExternalDriverIsSkipped(t *testing.T) {
	driver := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver,
		Annotations: map[string]string{ModeAnnotation: ModeExternal}}}
	objs := append(cluster(), driver, class(storagev1.VolumeBindingImmediate), handed(claim("")))
	c, client, f, _ := newDirect(t, objs...)
	if err := c.syncClaim(t.Context(), "ns", "data"); err != nil {
		t.Fatal(err)
	}
	if creates, _ := f.calls(); len(creates) != 0 {
		t.Errorf("CreateVolume called for an external driver: %v", creates)
	}
	if pvs, _ := client.CoreV1().PersistentVolumes().List(t.Context(), metav1.ListOptions{}); len(pvs.Items) != 0 {
		t.Errorf("volumes = %v", pvs.Items)
	}

	// The same claim of a driver no node has registered is not ours either.
	c, _, f, _ = newDirect(t, class(storagev1.VolumeBindingImmediate), handed(claim("")))
	if err := c.syncClaim(t.Context(), "ns", "data"); err != nil {
		t.Fatal(err)
	}
	if creates, _ := f.calls(); len(creates) != 0 {
		t.Errorf("CreateVolume called for an unknown driver: %v", creates)
	}
}

func TestCreateVolumeErrorIsReportedAndRetried(t *testing.T) {
	objs := append(cluster(), class(storagev1.VolumeBindingWaitForFirstConsumer), handed(claim("n1")))
	c, client, f, events := newDirect(t, objs...)
	f.createErr = status.Error(codes.ResourceExhausted, "pool is full")
	err := c.syncClaim(t.Context(), "ns", "data")
	if err == nil {
		t.Fatal("sync succeeded, want an error so the claim is retried")
	}
	if !events.find(`data Warning ProvisioningFailed failed to provision volume with StorageClass "fast": rpc error: code = ResourceExhausted desc = pool is full`) {
		t.Errorf("events = %v", events.events)
	}
	if creates, _ := f.calls(); len(creates) != 1 {
		t.Errorf("a driver error went on to other nodes: %v", creates)
	}

	f.createErr = nil
	if err := c.syncClaim(t.Context(), "ns", "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{}); err != nil {
		t.Errorf("volume after the retry: %v", err)
	}
	creates, _ := f.calls()
	if len(creates) != 2 || creates[1].req.Name != creates[0].req.Name {
		t.Errorf("retry = %v, want the same name again", creates)
	}
}

func TestImmediateBindingTriesNodesUntilOneHasTheController(t *testing.T) {
	objs := append(cluster(), class(storagev1.VolumeBindingImmediate), handed(claim("")))
	c, client, f, _ := newDirect(t, objs...)
	f.unreachable = map[string]bool{"n1": true}
	if err := c.syncClaim(t.Context(), "ns", "data"); err != nil {
		t.Fatal(err)
	}
	creates, _ := f.calls()
	if len(creates) != 2 || creates[0].node != "n1" || creates[1].node != "n2" {
		t.Fatalf("CreateVolume calls = %v, want n1 then n2", creates)
	}
	if r := creates[0].req.AccessibilityRequirements; r == nil || len(r.Requisite) != 2 {
		t.Errorf("accessibility = %v, want both zones", r)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}

	// With every node failing, the last error is reported.
	c, _, f, events := newDirect(t, objs...)
	f.unreachable = map[string]bool{"n1": true, "n2": true}
	if err := c.syncClaim(t.Context(), "ns", "data"); err == nil || !events.find("not found in the list of registered CSI drivers") {
		t.Errorf("err = %v, events = %v", err, events.events)
	}
}

func releasedVolume(policy corev1.PersistentVolumeReclaimPolicy) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-u1", UID: "pv-uid", Annotations: map[string]string{annProvisionedBy: testDriver},
			Finalizers: []string{Finalizer, "kubernetes.io/pv-protection"}},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: testDriver, VolumeHandle: "h1"}},
			PersistentVolumeReclaimPolicy: policy,
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.example.com/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z2"}}},
			}}}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased},
	}
}

func TestReleasedVolumeIsDeletedOnItsNode(t *testing.T) {
	c, client, f, _ := newDirect(t, append(cluster(), releasedVolume(corev1.PersistentVolumeReclaimDelete))...)
	if err := c.syncVolume(t.Context(), "pvc-u1"); err != nil {
		t.Fatal(err)
	}
	_, deletes := f.calls()
	if len(deletes) != 1 || deletes[0].node != "n2" || deletes[0].req.VolumeId != "h1" {
		t.Errorf("DeleteVolume calls = %v, want h1 on n2 (the volume's zone)", deletes)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("volume still there: %v", err)
	}
}

func TestRetainedOrExternalVolumesAreKept(t *testing.T) {
	c, client, f, _ := newDirect(t, append(cluster(), releasedVolume(corev1.PersistentVolumeReclaimRetain))...)
	if err := c.syncVolume(t.Context(), "pvc-u1"); err != nil {
		t.Fatal(err)
	}
	driver := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver,
		Annotations: map[string]string{ModeAnnotation: ModeExternal}}}
	c2, client2, f2, _ := newDirect(t, append(cluster(), driver, releasedVolume(corev1.PersistentVolumeReclaimDelete))...)
	if err := c2.syncVolume(t.Context(), "pvc-u1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f      *fakeCSI
		client *fake.Clientset
	}{{f, client}, {f2, client2}} {
		if _, deletes := tc.f.calls(); len(deletes) != 0 {
			t.Errorf("DeleteVolume called: %v", deletes)
		}
		if _, err := tc.client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{}); err != nil {
			t.Errorf("volume gone: %v", err)
		}
	}
}

func TestDeleteWithoutAReachableNodeWaits(t *testing.T) {
	c, client, _, events := newDirect(t, node("n1", "z1"), csiNode("n1", testDriver), releasedVolume(corev1.PersistentVolumeReclaimDelete))
	if err := c.syncVolume(t.Context(), "pvc-u1"); err == nil {
		t.Error("sync succeeded with no node in the volume's zone")
	}
	if !events.find("VolumeFailedDelete") {
		t.Errorf("events = %v", events.events)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{}); err != nil {
		t.Errorf("volume gone: %v", err)
	}
}
