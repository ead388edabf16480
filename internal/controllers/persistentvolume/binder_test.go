package persistentvolume

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// newTestController builds the controller on a fake clientset whose
// informer caches hold objs, with a fake event recorder.
func newTestController(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.PersistentVolume:
			err = factory.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(o)
		case *corev1.PersistentVolumeClaim:
			err = factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(o)
		case *storagev1.StorageClass:
			err = factory.Storage().V1().StorageClasses().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rec := record.NewFakeRecorder(20)
	c.recorder = rec
	client.ClearActions()
	t.Cleanup(c.queue.ShutDown)
	return c, client, rec
}

// writes lists the verb, resource and subresource of every write.
func writes(client *fake.Clientset) []string {
	var out []string
	for _, a := range client.Actions() {
		if a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wffcClass(name, provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner,
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
}

func TestBindWritesInUpstreamOrder(t *testing.T) {
	pvc := claim("1Gi", "")
	pv := volume("pv1", "1Gi", "")
	c, client, _ := newTestController(t, pvc, pv)
	if err := c.sync(context.Background(), claimPrefix+"ns/c"); err != nil {
		t.Fatal(err)
	}
	want := []string{"update persistentvolumes", "update persistentvolumes/status",
		"update persistentvolumeclaims", "update persistentvolumeclaims/status"}
	if got := writes(client); !equalStrings(got, want) {
		t.Fatalf("writes %v, want %v", got, want)
	}
	gotPV, _ := client.CoreV1().PersistentVolumes().Get(context.Background(), "pv1", metav1.GetOptions{})
	if gotPV.Spec.ClaimRef == nil || gotPV.Spec.ClaimRef.UID != "uid-c" || gotPV.Annotations[AnnBoundByController] != "yes" ||
		gotPV.Status.Phase != corev1.VolumeBound {
		t.Fatalf("volume %+v", gotPV)
	}
	gotPVC, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), "c", metav1.GetOptions{})
	if gotPVC.Spec.VolumeName != "pv1" || gotPVC.Annotations[AnnBindCompleted] != "yes" || gotPVC.Annotations[AnnBoundByController] != "yes" ||
		gotPVC.Status.Phase != corev1.ClaimBound || gotPVC.Status.Capacity.Storage().String() != "1Gi" {
		t.Fatalf("claim %+v", gotPVC)
	}
}

func TestProvisionedVolumeIsNotMarkedBoundByController(t *testing.T) {
	pvc := claim("1Gi", "local")
	pv := volume("pvc-uid-c", "1Gi", "local", claimRef("ns", "c", "uid-c"))
	c, client, _ := newTestController(t, pvc, pv, wffcClass("local", "skiff.dev/local-path"))
	if err := c.sync(context.Background(), claimPrefix+"ns/c"); err != nil {
		t.Fatal(err)
	}
	// The claimRef is complete already: no volume spec write.
	want := []string{"update persistentvolumes/status", "update persistentvolumeclaims", "update persistentvolumeclaims/status"}
	if got := writes(client); !equalStrings(got, want) {
		t.Fatalf("writes %v, want %v", got, want)
	}
}

func TestUnboundClaimEvents(t *testing.T) {
	tests := []struct {
		name       string
		objs       []runtime.Object
		claimClass string
		selected   string
		wantEvent  string
		wantWrites []string
	}{
		{name: "no class", claimClass: "",
			wantEvent: "Normal FailedBinding no persistent volumes available for this claim and no storage class is set"},
		{name: "unknown class", claimClass: "gold",
			wantEvent: `Warning ProvisioningFailed storageclass.storage.k8s.io "gold" not found`},
		{name: "WaitForFirstConsumer before the scheduler chose", claimClass: "local",
			objs:       []runtime.Object{wffcClass("local", "skiff.dev/local-path")},
			wantEvent:  "Normal WaitForFirstConsumer waiting for first consumer to be created before binding",
			wantWrites: []string{"update persistentvolumeclaims"}},
		{name: "node chosen: the provisioner is asked", claimClass: "local", selected: "n1",
			objs:       []runtime.Object{wffcClass("local", "skiff.dev/local-path")},
			wantEvent:  "Normal ExternalProvisioning Waiting for a volume to be created either by the external provisioner 'skiff.dev/local-path'",
			wantWrites: []string{"update persistentvolumeclaims"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pvc := claim("1Gi", tt.claimClass)
			pvc.Status.Phase = corev1.ClaimPending
			if tt.selected != "" {
				pvc.Annotations = map[string]string{AnnSelectedNode: tt.selected}
			}
			c, client, rec := newTestController(t, append(tt.objs, pvc)...)
			_ = c.sync(context.Background(), claimPrefix+"ns/c")
			select {
			case ev := <-rec.Events:
				if len(ev) < len(tt.wantEvent) || ev[:len(tt.wantEvent)] != tt.wantEvent {
					t.Fatalf("event %q, want %q", ev, tt.wantEvent)
				}
			default:
				t.Fatalf("no event, want %q", tt.wantEvent)
			}
			if got := writes(client); !equalStrings(got, tt.wantWrites) {
				t.Fatalf("writes %v, want %v", got, tt.wantWrites)
			}
			if tt.wantWrites != nil {
				got, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), "c", metav1.GetOptions{})
				if got.Annotations[AnnStorageProvisioner] != "skiff.dev/local-path" || got.Annotations[AnnBetaStorageProvisioner] != "skiff.dev/local-path" {
					t.Fatalf("annotations %v", got.Annotations)
				}
			}
		})
	}
}

func TestVolumePhases(t *testing.T) {
	bound := claim("1Gi", "")
	bound.Spec.VolumeName = "pv"
	tests := []struct {
		name       string
		pv         *corev1.PersistentVolume
		objs       []runtime.Object
		wantPhase  corev1.PersistentVolumePhase
		wantDelete bool
	}{
		{name: "free volume is Available", pv: volume("pv", "1Gi", "", phase("")), wantPhase: corev1.VolumeAvailable},
		{name: "bound volume", pv: volume("pv", "1Gi", "", claimRef("ns", "c", "uid-c")), objs: []runtime.Object{bound},
			wantPhase: corev1.VolumeBound},
		{name: "claim gone, Retain: Released", pv: volume("pv", "1Gi", "", claimRef("ns", "c", "uid-c"), func(pv *corev1.PersistentVolume) {
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		}), wantPhase: corev1.VolumeReleased},
		{name: "claim gone, Delete, static: the object goes", pv: volume("pv", "1Gi", "", claimRef("ns", "c", "uid-c"), func(pv *corev1.PersistentVolume) {
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
		}), wantPhase: corev1.VolumeReleased, wantDelete: true},
		{name: "claim gone, Delete, provisioned: left to the provisioner", pv: volume("pv", "1Gi", "", claimRef("ns", "c", "uid-c"), func(pv *corev1.PersistentVolume) {
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
			pv.Annotations = map[string]string{AnnProvisionedBy: "skiff.dev/local-path"}
		}), wantPhase: corev1.VolumeReleased},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, client, _ := newTestController(t, append(tt.objs, tt.pv)...)
			if err := c.sync(context.Background(), volumePrefix+"pv"); err != nil {
				t.Fatal(err)
			}
			deleted := false
			var phase corev1.PersistentVolumePhase
			for _, a := range client.Actions() {
				switch a := a.(type) {
				case k8stesting.DeleteAction:
					deleted = true
				case k8stesting.UpdateAction:
					if a.GetSubresource() == "status" {
						phase = a.GetObject().(*corev1.PersistentVolume).Status.Phase
					}
				}
			}
			if phase != tt.wantPhase || deleted != tt.wantDelete {
				t.Fatalf("phase %q deleted %v, want %q %v", phase, deleted, tt.wantPhase, tt.wantDelete)
			}
		})
	}
}

func TestBoundClaimLosesVolume(t *testing.T) {
	pvc := claim("1Gi", "")
	pvc.Spec.VolumeName = "gone"
	pvc.Annotations = map[string]string{AnnBindCompleted: "yes"}
	pvc.Status.Phase = corev1.ClaimBound
	c, client, rec := newTestController(t, pvc)
	if err := c.sync(context.Background(), claimPrefix+"ns/c"); err != nil {
		t.Fatal(err)
	}
	got, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), "c", metav1.GetOptions{})
	if got.Status.Phase != corev1.ClaimLost {
		t.Fatalf("phase %q, want Lost", got.Status.Phase)
	}
	if ev := <-rec.Events; ev != "Warning ClaimLost Bound claim has lost its PersistentVolume. Data on the volume is lost!" {
		t.Fatalf("event %q", ev)
	}
}

// A phase change is stamped with the controller's clock.
func TestPhaseTransitionTimeFromClock(t *testing.T) {
	c, client, _ := newTestController(t, volume("pv", "1Gi", "", phase("")))
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	c.Clock = clocktesting.NewFakePassiveClock(at)
	if err := c.sync(context.Background(), volumePrefix+"pv"); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if u, ok := a.(k8stesting.UpdateAction); ok && u.GetSubresource() == "status" {
			got := u.GetObject().(*corev1.PersistentVolume).Status.LastPhaseTransitionTime
			if got == nil || !got.Time.Equal(at) {
				t.Fatalf("lastPhaseTransitionTime %v, want %v", got, at)
			}
			return
		}
	}
	t.Fatal("no status write for the new volume's phase")
}

// externalCSIVolume is a PV as upstream's external-provisioner creates it
// for claim ns/c: pre-bound with the claim's UID, provisioned-by the
// driver, its deletion finalizer and node affinity from the topology the
// driver returned.
func externalCSIVolume(policy corev1.PersistentVolumeReclaimPolicy, opts ...pvOpt) *corev1.PersistentVolume {
	pv := volume("pvc-uid-c", "1Gi", "csi", append([]pvOpt{claimRef("ns", "c", "uid-c"), phase(corev1.VolumePending)}, opts...)...)
	pv.Annotations = map[string]string{AnnProvisionedBy: "csi.example.com"}
	pv.Finalizers = []string{"external-provisioner.volume.kubernetes.io/finalizer"}
	pv.Spec.PersistentVolumeReclaimPolicy = policy
	pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: "csi.example.com", VolumeHandle: "pvc-uid-c"}
	pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.example.com/node", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}},
	}}}}
	return pv
}

// The whole controller side of an external provisioner's volume: the
// claim of a WaitForFirstConsumer class is handed to the provisioner
// once the scheduler chose a node, the PV the provisioner creates binds
// to it, and after the claim is gone the PV is Released and left for the
// provisioner to delete: never deleted nor failed by this controller.
func TestExternalProvisionerVolumeLifecycle(t *testing.T) {
	ctx := context.Background()
	class := wffcClass("csi", "csi.example.com")
	class.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimDelete)
	pvc := claim("1Gi", "csi")
	pvc.Annotations = map[string]string{AnnSelectedNode: "n1"}

	c, client, _ := newTestController(t, class, pvc)
	_ = c.sync(ctx, claimPrefix+"ns/c")
	got, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "c", metav1.GetOptions{})
	if got.Annotations[AnnStorageProvisioner] != "csi.example.com" || got.Annotations[AnnBetaStorageProvisioner] != "csi.example.com" ||
		got.Annotations[AnnSelectedNode] != "n1" {
		t.Fatalf("claim annotations %v: want both storage-provisioner annotations and selected-node kept", got.Annotations)
	}

	// The provisioner created the PV: the claim's sync binds both.
	pv := externalCSIVolume(corev1.PersistentVolumeReclaimDelete)
	c, client, _ = newTestController(t, class, got, pv)
	if err := c.sync(ctx, claimPrefix+"ns/c"); err != nil {
		t.Fatal(err)
	}
	gotPV, _ := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	gotPVC, _ := client.CoreV1().PersistentVolumeClaims("ns").Get(ctx, "c", metav1.GetOptions{})
	if gotPV.Status.Phase != corev1.VolumeBound || gotPV.Annotations[AnnBoundByController] != "" {
		t.Fatalf("volume phase %q annotations %v: want Bound, not bound-by-controller", gotPV.Status.Phase, gotPV.Annotations)
	}
	if gotPVC.Spec.VolumeName != pv.Name || gotPVC.Status.Phase != corev1.ClaimBound || gotPVC.Annotations[AnnBindCompleted] != "yes" {
		t.Fatalf("claim %+v: want Bound to %s", gotPVC, pv.Name)
	}

	for _, tt := range []struct {
		name string
		pv   *corev1.PersistentVolume
	}{
		{"claim deleted", externalCSIVolume(corev1.PersistentVolumeReclaimDelete, phase(corev1.VolumeBound))},
		{"claim and volume deleted", externalCSIVolume(corev1.PersistentVolumeReclaimDelete, phase(corev1.VolumeBound), func(pv *corev1.PersistentVolume) {
			pv.DeletionTimestamp = ptr.To(metav1.Now())
		})},
		{"already Released", externalCSIVolume(corev1.PersistentVolumeReclaimDelete, phase(corev1.VolumeReleased))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, client, rec := newTestController(t, class, tt.pv)
			if err := c.sync(ctx, volumePrefix+tt.pv.Name); err != nil {
				t.Fatal(err)
			}
			for _, a := range client.Actions() {
				if a.GetVerb() == "delete" {
					t.Fatalf("the controller deleted the provisioner's volume: %v", a)
				}
			}
			got, err := client.CoreV1().PersistentVolumes().Get(ctx, tt.pv.Name, metav1.GetOptions{})
			if err != nil || got.Status.Phase != corev1.VolumeReleased {
				t.Fatalf("volume %v, %v: want it kept and Released", got.Status, err)
			}
			select {
			case ev := <-rec.Events:
				t.Fatalf("unexpected event %q", ev)
			default:
			}
		})
	}
}
