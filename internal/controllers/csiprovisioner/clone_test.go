package csiprovisioner

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

// sourceClaim is a bound 2Gi claim of class fast, the clones' source.
func sourceClaim() *corev1.PersistentVolumeClaim {
	pvc := claim("")
	pvc.Name, pvc.UID = "src", "u0"
	pvc.Spec.VolumeName = "pvc-u0"
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
		Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}}
	return pvc
}

// sourceVolume is the source claim's volume, handle h0.
func sourceVolume() *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-u0"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: testDriver, VolumeHandle: "h0"}},
			StorageClassName:       "fast",
		},
	}
}

// cloneClaim is a claim named name (UID uid) handed to the driver, cloning src.
func cloneClaim(name, uid string) *corev1.PersistentVolumeClaim {
	pvc := handed(claim(""))
	pvc.Name, pvc.UID = name, types.UID(uid)
	pvc.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "src"}
	return pvc
}

func cloneCluster(objs ...runtime.Object) []runtime.Object {
	return append(append(cluster(), class(storagev1.VolumeBindingImmediate)), objs...)
}

// finalizerUpdates are the source claim's finalizers after each update.
func finalizerUpdates(actions []k8stesting.Action) [][]string {
	var out [][]string
	for _, a := range actions {
		u, ok := a.(k8stesting.UpdateAction)
		if !ok || a.GetResource().Resource != "persistentvolumeclaims" {
			continue
		}
		if pvc := u.GetObject().(*corev1.PersistentVolumeClaim); pvc.Name == "src" {
			out = append(out, pvc.Finalizers)
		}
	}
	return out
}

func TestCloneCreatesFromTheSourceVolume(t *testing.T) {
	byRef := cloneClaim("data", "u1")
	byRef.Spec.DataSource = nil
	byRef.Spec.DataSourceRef = &corev1.TypedObjectReference{Kind: "PersistentVolumeClaim", Name: "src", Namespace: ptr.To("ns")}
	for name, pvc := range map[string]*corev1.PersistentVolumeClaim{"dataSource": cloneClaim("data", "u1"), "dataSourceRef": byRef} {
		t.Run(name, func(t *testing.T) {
			c, client, f, events := newDirect(t, cloneCluster(sourceClaim(), sourceVolume(), pvc)...)
			if err := c.syncClaim(t.Context(), "ns", "data"); err != nil {
				t.Fatal(err)
			}
			creates, _ := f.calls()
			if len(creates) != 1 || creates[0].req.GetVolumeContentSource().GetVolume().GetVolumeId() != "h0" {
				t.Fatalf("CreateVolume calls = %v, want one from volume h0", creates)
			}
			pv, err := client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if pv.Spec.CSI.VolumeHandle != "handle-pvc-u1" || pv.Spec.ClaimRef.Name != "data" {
				t.Errorf("volume = %+v", pv.Spec)
			}
			if got := finalizerUpdates(client.Actions()); len(got) != 2 || !slices.Contains(got[0], CloneFinalizer) || slices.Contains(got[1], CloneFinalizer) {
				t.Errorf("source finalizer updates = %v, want %s added then removed", got, CloneFinalizer)
			}
			if !events.find("data Normal ProvisioningSucceeded") {
				t.Errorf("events = %v", events.events)
			}
		})
	}
}

func TestCloneRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(src *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, clone *corev1.PersistentVolumeClaim)
		want string
	}{
		{"other class", func(src *corev1.PersistentVolumeClaim, _ *corev1.PersistentVolume, _ *corev1.PersistentVolumeClaim) {
			src.Spec.StorageClassName = ptr.To("slow")
		}, `must be in the same StorageClass: source src is in "slow", the new PVC in "fast"`},
		{"smaller", func(_ *corev1.PersistentVolumeClaim, _ *corev1.PersistentVolume, clone *corev1.PersistentVolumeClaim) {
			clone.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("1Gi")
		}, "requested 1Gi, source is 2Gi"},
		{"unbound", func(src *corev1.PersistentVolumeClaim, _ *corev1.PersistentVolume, _ *corev1.PersistentVolumeClaim) {
			src.Spec.VolumeName, src.Status.Phase = "", corev1.ClaimPending
		}, "source PVC ns/src of the clone is not bound"},
		{"deleting", func(src *corev1.PersistentVolumeClaim, _ *corev1.PersistentVolume, _ *corev1.PersistentVolumeClaim) {
			src.DeletionTimestamp = &metav1.Time{}
		}, "source PVC ns/src of the clone is being deleted"},
		{"missing", func(_ *corev1.PersistentVolumeClaim, _ *corev1.PersistentVolume, clone *corev1.PersistentVolumeClaim) {
			clone.Spec.DataSource.Name = "nope"
		}, "source PVC ns/nope of the clone does not exist"},
		{"other driver", func(_ *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, _ *corev1.PersistentVolumeClaim) {
			pv.Spec.CSI.Driver = "other.csi.example.com"
		}, "volume pvc-u0 of source PVC ns/src is not a volume of CSI driver " + testDriver},
		{"mode", func(_ *corev1.PersistentVolumeClaim, _ *corev1.PersistentVolume, clone *corev1.PersistentVolumeClaim) {
			clone.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
		}, "must have the same volume mode: source src is Filesystem, the new PVC Block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, pv, clone := sourceClaim(), sourceVolume(), cloneClaim("data", "u1")
			tc.edit(src, pv, clone)
			c, client, f, events := newDirect(t, cloneCluster(src, pv, clone)...)
			if err := c.syncClaim(t.Context(), "ns", "data"); err == nil {
				t.Error("sync succeeded, want an error so the clone is retried")
			}
			if !events.find(`data Warning ProvisioningFailed failed to provision volume with StorageClass "fast": `) || !events.find(tc.want) {
				t.Errorf("events = %v, want %q", events.events, tc.want)
			}
			if creates, _ := f.calls(); len(creates) != 0 {
				t.Errorf("CreateVolume called: %v", creates)
			}
			if got := finalizerUpdates(client.Actions()); len(got) != 0 {
				t.Errorf("source updated: %v", got)
			}
		})
	}
}

// TestBlankCloneIsDeleted: a driver that answers a clone without its
// content source made a blank volume, which is given back, as upstream.
func TestBlankCloneIsDeleted(t *testing.T) {
	c, client, f, events := newDirect(t, cloneCluster(sourceClaim(), sourceVolume(), cloneClaim("data", "u1"))...)
	f.blankClones = true
	if err := c.syncClaim(t.Context(), "ns", "data"); err == nil {
		t.Error("sync succeeded, want an error so the clone is retried")
	}
	if _, deletes := f.calls(); len(deletes) != 1 || deletes[0].req.VolumeId != "handle-pvc-u1" {
		t.Errorf("DeleteVolume calls = %v, want the blank volume's", deletes)
	}
	if !events.find("data Warning ProvisioningFailed") || !events.find("volume content source missing") {
		t.Errorf("events = %v", events.events)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{}); err == nil {
		t.Error("volume created for a blank clone")
	}
}

func TestSnapshotsAndPopulatorsAreRefused(t *testing.T) {
	snap := cloneClaim("data", "u1")
	snap.Spec.DataSource = &corev1.TypedLocalObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "s1"}
	c, _, f, events := newDirect(t, cloneCluster(sourceClaim(), sourceVolume(), snap)...)
	if err := c.syncClaim(t.Context(), "ns", "data"); err != nil {
		t.Fatal(err)
	}
	if !events.find("data Warning ProvisioningFailed claims with a VolumeSnapshot, volume populator or cross-namespace dataSource are not supported") {
		t.Errorf("events = %v", events.events)
	}
	if creates, _ := f.calls(); len(creates) != 0 {
		t.Errorf("CreateVolume called: %v", creates)
	}
}

// TestCloningProtectionWaitsForEveryClone: the finalizer stays while a
// second clone is pending and goes once that clone is deleted.
func TestCloningProtectionWaitsForEveryClone(t *testing.T) {
	other := cloneClaim("other", "u2")
	objs := cloneCluster(sourceClaim(), sourceVolume(), cloneClaim("data", "u1"), other)
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, quiet())
	controllertest.Seed(t, factory, objs...)
	c.csi, c.recorder = &fakeCSI{}, &eventLog{}
	t.Cleanup(c.queue.ShutDown)
	if err := c.syncClaim(t.Context(), "ns", "data"); err != nil {
		t.Fatal(err)
	}
	src, err := client.CoreV1().PersistentVolumeClaims("ns").Get(t.Context(), "src", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(src.Finalizers, CloneFinalizer) {
		t.Fatalf("finalizers = %v, want %s kept while other is pending", src.Finalizers, CloneFinalizer)
	}

	// The source's own update and the other clone's deletion queue it.
	c.enqueueClaim(src)
	deleting := other.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{}
	c.enqueueClaim(deleting)
	if n := c.queue.Len(); n != 2 { // claim/ns/other and protect/ns/src
		t.Errorf("queue length = %d, want 2", n)
	}
	// The caches catch up: data's volume exists, the other clone is being deleted.
	pv, err := client.CoreV1().PersistentVolumes().Get(t.Context(), "pvc-u1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := factory.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(pv); err != nil {
		t.Fatal(err)
	}
	claims := factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer()
	if err := claims.Update(src); err != nil {
		t.Fatal(err)
	}
	if err := claims.Update(deleting); err != nil {
		t.Fatal(err)
	}
	if err := c.sync(t.Context(), protectPrefix+"ns/src"); err != nil {
		t.Fatal(err)
	}
	src, err = client.CoreV1().PersistentVolumeClaims("ns").Get(t.Context(), "src", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(src.Finalizers, CloneFinalizer) {
		t.Errorf("finalizers = %v, want %s removed", src.Finalizers, CloneFinalizer)
	}
}
