package attachdetach

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const (
	driver = "csi.example.com"
	handle = "vol-1"
)

// env is a controller on a fake clientset whose informer stores the test
// fills directly; sync copies the controller's writes back into them.
type env struct {
	t        *testing.T
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	c        *Controller
	clock    *testingclock.FakeClock
	recorder *record.FakeRecorder
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	e := &env{t: t, client: client, factory: factory, clock: testingclock.NewFakeClock(time.Now()), recorder: record.NewFakeRecorder(100)}
	e.c = New(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.c.clock = e.clock
	e.c.recorder = e.recorder
	e.add(objs...)
	return e
}

func (e *env) storeOf(o runtime.Object) cache.Store {
	switch o.(type) {
	case *corev1.Pod:
		return e.factory.Core().V1().Pods().Informer().GetStore()
	case *corev1.Node:
		return e.factory.Core().V1().Nodes().Informer().GetStore()
	case *corev1.PersistentVolumeClaim:
		return e.factory.Core().V1().PersistentVolumeClaims().Informer().GetStore()
	case *corev1.PersistentVolume:
		return e.factory.Core().V1().PersistentVolumes().Informer().GetStore()
	case *storagev1.CSIDriver:
		return e.factory.Storage().V1().CSIDrivers().Informer().GetStore()
	case *storagev1.VolumeAttachment:
		return e.factory.Storage().V1().VolumeAttachments().Informer().GetStore()
	}
	e.t.Fatalf("no store for %T", o)
	return nil
}

// add creates objects in the API and the informer stores.
func (e *env) add(objs ...runtime.Object) {
	e.t.Helper()
	for _, o := range objs {
		if err := e.client.Tracker().Add(o); err != nil {
			e.t.Fatal(err)
		}
		if err := e.storeOf(o).Add(o); err != nil {
			e.t.Fatal(err)
		}
	}
}

// update replaces an object in the API and the informer store.
func (e *env) update(o runtime.Object) {
	e.t.Helper()
	var err error
	switch x := o.(type) {
	case *corev1.Pod:
		_, err = e.client.CoreV1().Pods(x.Namespace).Update(context.Background(), x, metav1.UpdateOptions{})
	case *corev1.Node:
		_, err = e.client.CoreV1().Nodes().Update(context.Background(), x, metav1.UpdateOptions{})
	case *storagev1.VolumeAttachment:
		_, err = e.client.StorageV1().VolumeAttachments().Update(context.Background(), x, metav1.UpdateOptions{})
	default:
		e.t.Fatalf("cannot update %T", o)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.storeOf(o).Update(o); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deletePod(p *corev1.Pod) {
	e.t.Helper()
	if err := e.client.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.storeOf(p).Delete(p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) deleteNode(name string) {
	e.t.Helper()
	n := e.node(name)
	if err := e.client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.storeOf(n).Delete(n); err != nil {
		e.t.Fatal(err)
	}
}

// sync runs one sync of node, then refreshes the node and attachment
// stores from the API as the informers would.
func (e *env) sync(node string) error {
	e.t.Helper()
	err := e.c.sync(context.Background(), node)
	ctx := context.Background()
	vas, lerr := e.client.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
	if lerr != nil {
		e.t.Fatal(lerr)
	}
	items := make([]any, 0, len(vas.Items))
	for i := range vas.Items {
		items = append(items, &vas.Items[i])
	}
	if err := e.storeOf(&storagev1.VolumeAttachment{}).Replace(items, ""); err != nil {
		e.t.Fatal(err)
	}
	nodes, lerr := e.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if lerr != nil {
		e.t.Fatal(lerr)
	}
	items = items[:0]
	for i := range nodes.Items {
		items = append(items, &nodes.Items[i])
	}
	if err := e.storeOf(&corev1.Node{}).Replace(items, ""); err != nil {
		e.t.Fatal(err)
	}
	return err
}

func (e *env) mustSync(node string) {
	e.t.Helper()
	if err := e.sync(node); err != nil {
		e.t.Fatalf("sync %s: %v", node, err)
	}
}

func (e *env) attachments() []storagev1.VolumeAttachment {
	e.t.Helper()
	l, err := e.client.StorageV1().VolumeAttachments().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

func (e *env) node(name string) *corev1.Node {
	e.t.Helper()
	n, err := e.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// attachedByExternalAttacher marks an attachment attached, as the
// driver's external-attacher would.
func (e *env) attachedByExternalAttacher(name string, metadata map[string]string) {
	e.t.Helper()
	va, err := e.client.StorageV1().VolumeAttachments().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	va.Status = storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: metadata}
	e.update(va)
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// boundCSIVolume is a claim bound to a CSI volume of driver.
func boundCSIVolume(claim, pvName, handle string, modes ...corev1.PersistentVolumeAccessMode) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claim, Namespace: "default", UID: types.UID("uid-" + claim)},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: pvName},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes: modes,
			ClaimRef:    &corev1.ObjectReference{Namespace: "default", Name: claim, UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: handle},
			},
		},
	}
	return pvc, pv
}

func podWithClaim(name, nodeName, claim string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			NodeName: nodeName,
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// upstreamName is upstream's attachment name, spelled out independently.
func upstreamName(handle, driver, node string) string {
	sum := sha256.Sum256([]byte(handle + driver + node))
	return "csi-" + hex.EncodeToString(sum[:])
}

func TestAttachesWhenPodScheduled(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle)
	pending := podWithClaim("web", "", "data")
	e := newEnv(t, node("n1"), pvc, pv, pending)
	e.mustSync("n1")
	if got := e.attachments(); len(got) != 0 {
		t.Fatalf("attachments before scheduling: %v", got)
	}

	scheduled := pending.DeepCopy()
	scheduled.Spec.NodeName = "n1"
	e.update(scheduled)
	e.mustSync("n1")
	got := e.attachments()
	if len(got) != 1 {
		t.Fatalf("got %d attachments, want 1", len(got))
	}
	va := got[0]
	if want := upstreamName(handle, driver, "n1"); va.Name != want {
		t.Errorf("name = %s, want %s", va.Name, want)
	}
	if va.Spec.Attacher != driver || va.Spec.NodeName != "n1" || ptr.Deref(va.Spec.Source.PersistentVolumeName, "") != "pv-1" {
		t.Errorf("spec = %+v", va.Spec)
	}
	if va.Status.Attached {
		t.Error("status set by the controller; it belongs to the external attacher")
	}
	// Syncing again changes nothing.
	e.mustSync("n1")
	if n := len(e.attachments()); n != 1 {
		t.Errorf("%d attachments after a second sync", n)
	}
}

func TestNoAttachmentForDriversWithoutAttach(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle)
	noAttach := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: driver},
		Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(false)}}
	inline := podWithClaim("inline", "n1", "")
	inline.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: driver}}
	e := newEnv(t, node("n1"), pvc, pv, noAttach, podWithClaim("web", "n1", "data"), inline)
	e.mustSync("n1")
	if got := e.attachments(); len(got) != 0 {
		t.Fatalf("attachments for attachRequired=false and inline volumes: %v", got)
	}
}

func TestPodsOnANodeShareOneAttachment(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle, corev1.ReadWriteOnce)
	a, b := podWithClaim("a", "n1", "data"), podWithClaim("b", "n1", "data")
	e := newEnv(t, node("n1"), pvc, pv, a, b)
	e.mustSync("n1")
	if n := len(e.attachments()); n != 1 {
		t.Fatalf("%d attachments for two pods of one node, want 1", n)
	}

	e.deletePod(a)
	e.mustSync("n1")
	if n := len(e.attachments()); n != 1 {
		t.Fatalf("attachment gone while pod b still uses the volume")
	}

	// A pod that has ended needs its volumes no more.
	done := b.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	e.update(done)
	e.mustSync("n1")
	if got := e.attachments(); len(got) != 0 {
		t.Fatalf("attachment kept after the last pod ended: %v", got[0].Name)
	}
}

func TestDetachWhenLastPodDeleted(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle)
	p := podWithClaim("web", "n1", "data")
	e := newEnv(t, node("n1"), pvc, pv, p)
	e.mustSync("n1")
	e.deletePod(p)
	e.mustSync("n1")
	if got := e.attachments(); len(got) != 0 {
		t.Fatalf("attachment kept after its pod was deleted")
	}
}

func TestDetachHeldWhileVolumeInUse(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle)
	p := podWithClaim("web", "n1", "data")
	e := newEnv(t, node("n1"), pvc, pv, p)
	e.mustSync("n1")
	name := upstreamName(handle, driver, "n1")
	e.attachedByExternalAttacher(name, nil)
	n := e.node("n1")
	n.Status.VolumesInUse = []corev1.UniqueVolumeName{"kubernetes.io/csi/" + driver + "^" + handle}
	e.update(n)

	e.deletePod(p)
	err := e.sync("n1")
	if err == nil || !strings.HasPrefix(err.Error(), "requeue after") {
		t.Fatalf("sync = %v, want a requeue while the node still mounts the volume", err)
	}
	if len(e.attachments()) != 1 {
		t.Fatal("detached while the node reports the volume in use")
	}

	// Still mounted after the longest wait: detached anyway.
	e.clock.Step(maxWaitForUnmount)
	e.mustSync("n1")
	if len(e.attachments()) != 0 {
		t.Fatal("not detached after the unmount timeout")
	}
	if got := e.node("n1").Status.VolumesAttached; len(got) != 0 {
		t.Errorf("volumesAttached after detach = %v", got)
	}
}

func TestDetachWhenNodeUnmountsOrGoes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		after func(e *env)
	}{
		{"unmounted", func(e *env) {
			n := e.node("n1")
			n.Status.VolumesInUse = nil
			e.update(n)
		}},
		{"node deleted", func(e *env) { e.deleteNode("n1") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pvc, pv := boundCSIVolume("data", "pv-1", handle)
			p := podWithClaim("web", "n1", "data")
			e := newEnv(t, node("n1"), pvc, pv, p)
			e.mustSync("n1")
			n := e.node("n1")
			n.Status.VolumesInUse = []corev1.UniqueVolumeName{UniqueVolumeName(driver, handle)}
			e.update(n)
			e.deletePod(p)
			if err := e.sync("n1"); err == nil {
				t.Fatal("detached at once while in use")
			}
			tt.after(e)
			e.mustSync("n1")
			if len(e.attachments()) != 0 {
				t.Fatal("attachment kept")
			}
		})
	}
}

func TestNodeStatusVolumesAttached(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle)
	p := podWithClaim("web", "n1", "data")
	e := newEnv(t, node("n1"), pvc, pv, p)
	e.mustSync("n1")
	if got := e.node("n1").Status.VolumesAttached; len(got) != 0 {
		t.Fatalf("volumesAttached before the attacher attached: %v", got)
	}

	e.attachedByExternalAttacher(upstreamName(handle, driver, "n1"), map[string]string{"devicePath": "/dev/xvdb"})
	e.mustSync("n1")
	want := []corev1.AttachedVolume{{Name: "kubernetes.io/csi/" + driver + "^" + handle, DevicePath: "/dev/xvdb"}}
	if got := e.node("n1").Status.VolumesAttached; !sameVolumes(got, want) {
		t.Fatalf("volumesAttached = %v, want %v", got, want)
	}

	e.deletePod(p)
	e.mustSync("n1")
	if got := e.node("n1").Status.VolumesAttached; len(got) != 0 {
		t.Errorf("volumesAttached after the pod went = %v", got)
	}
}

func TestReadWriteOnceVolumeWaitsForOtherNode(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle, corev1.ReadWriteOnce)
	old, moved := podWithClaim("old", "n1", "data"), podWithClaim("new", "n2", "data")
	e := newEnv(t, node("n1"), node("n2"), pvc, pv, old)
	e.mustSync("n1")
	e.add(moved)
	e.mustSync("n2")
	if got := e.attachments(); len(got) != 1 || got[0].Spec.NodeName != "n1" {
		t.Fatalf("attachments = %v, want only n1's", got)
	}
	if ev := <-e.recorder.Events; !strings.Contains(ev, "Multi-Attach error") {
		t.Errorf("event = %q, want a Multi-Attach error", ev)
	}

	e.deletePod(old)
	e.mustSync("n1")
	e.mustSync("n2")
	if got := e.attachments(); len(got) != 1 || got[0].Spec.NodeName != "n2" {
		t.Fatalf("attachments = %v, want only n2's", got)
	}
}

func TestAttachErrorReportedOnPods(t *testing.T) {
	pvc, pv := boundCSIVolume("data", "pv-1", handle)
	e := newEnv(t, node("n1"), pvc, pv, podWithClaim("web", "n1", "data"))
	e.mustSync("n1")
	va := e.attachments()[0]
	failed := va.DeepCopy()
	failed.Status.AttachError = &storagev1.VolumeError{Message: "rpc error: no capacity"}
	e.c.attachmentUpdated(&va, failed)
	if ev := <-e.recorder.Events; !strings.Contains(ev, "FailedAttachVolume") || !strings.Contains(ev, "no capacity") {
		t.Errorf("event = %q", ev)
	}
}

func TestUniqueVolumeNameRoundTrip(t *testing.T) {
	name := UniqueVolumeName(driver, "a^b")
	if d, h, ok := parseUniqueVolumeName(name); !ok || d != driver || h != "a^b" {
		t.Errorf("parse(%s) = %s %s %v", name, d, h, ok)
	}
	if _, _, ok := parseUniqueVolumeName("kubernetes.io/host-path/x"); ok {
		t.Error("parsed a non-CSI name")
	}
}

// An attachment another client made under a name of its own (the
// conformance VolumeAttachment specs create "va-e2e-..." ones) is not the
// controller's to delete, though no pod wants its volume.
func TestForeignAttachmentLeftAlone(t *testing.T) {
	pv := "pv-foreign"
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: "va-e2e-x5zn9"},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: "e2e-test.storage.k8s.io", NodeName: "n1",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: &pv}},
	}
	e := newEnv(t, node("n1"), va)
	e.mustSync("n1")
	if _, err := e.client.StorageV1().VolumeAttachments().Get(context.Background(), va.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("foreign attachment: %v, want it kept", err)
	}
	if !isAttachmentName(AttachmentName(handle, "driver", "n1")) || isAttachmentName("csi-xyz") {
		t.Error("isAttachmentName disagrees with AttachmentName")
	}
}
