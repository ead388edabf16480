package localpath

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

func newTest(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder) {
	c, client, rec, _ := newTestWithFactory(t, objs...)
	return c, client, rec
}

func newTestWithFactory(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder, informers.SharedInformerFactory) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)))
	controllertest.Seed(t, factory, objs...)
	rec := record.NewFakeRecorder(10)
	c.recorder = rec
	client.ClearActions()
	t.Cleanup(c.queue.ShutDown)
	return c, client, rec, factory
}

func testClaim(modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data", UID: "u1", Annotations: map[string]string{
			annStorageProvisioner: ProvisionerName, annSelectedNode: "n1"}},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(ClassName), AccessModes: modes,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("3Gi")}}},
	}
}

func testNode(dir string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	if dir != "" {
		n.Annotations = map[string]string{DirAnnotation: dir}
	}
	return n
}

func TestProvision(t *testing.T) {
	tests := []struct {
		name     string
		claim    *corev1.PersistentVolumeClaim
		class    *storagev1.StorageClass
		node     *corev1.Node
		wantPath string
		wantErr  string // in the ProvisioningFailed event
	}{
		{name: "node's directory", claim: testClaim(corev1.ReadWriteOnce), class: DefaultClass(), node: testNode("/data/skiff/storage"),
			wantPath: "/data/skiff/storage/u1"},
		{name: "default directory", claim: testClaim(corev1.ReadWriteOncePod), class: DefaultClass(), node: testNode(""),
			wantPath: "/var/lib/skiff/storage/u1"},
		{name: "ReadWriteMany refused", claim: testClaim(corev1.ReadWriteMany), class: DefaultClass(), node: testNode(""),
			wantErr: "access mode ReadWriteMany is not supported"},
		{name: "Immediate binding refused", claim: testClaim(corev1.ReadWriteOnce), node: testNode(""),
			class: func() *storagev1.StorageClass {
				c := DefaultClass()
				c.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
				return c
			}(), wantErr: "must have volumeBindingMode WaitForFirstConsumer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, client, rec := newTest(t, tt.claim, tt.class, tt.node)
			if err := c.sync(context.Background(), claimPrefix+"ns/data"); err != nil {
				t.Fatal(err)
			}
			ev := <-rec.Events
			pvs, _ := client.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{})
			if tt.wantErr != "" {
				if !strings.HasPrefix(ev, "Warning ProvisioningFailed") || !strings.Contains(ev, tt.wantErr) {
					t.Fatalf("event %q, want ProvisioningFailed with %q", ev, tt.wantErr)
				}
				if len(pvs.Items) != 0 {
					t.Fatalf("volume created for a refused claim")
				}
				return
			}
			if len(pvs.Items) != 1 {
				t.Fatalf("%d volumes, event %q", len(pvs.Items), ev)
			}
			pv := pvs.Items[0]
			if pv.Name != "pvc-u1" || pv.Spec.HostPath.Path != tt.wantPath || *pv.Spec.HostPath.Type != corev1.HostPathDirectoryOrCreate ||
				pv.Spec.ClaimRef.UID != "u1" || pv.Spec.Capacity.Storage().String() != "3Gi" ||
				pv.Annotations[annProvisionedBy] != ProvisionerName || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
				t.Fatalf("volume %+v", pv)
			}
		})
	}
}

func TestProvisionWaitsForSelectedNode(t *testing.T) {
	pvc := testClaim(corev1.ReadWriteOnce)
	delete(pvc.Annotations, annSelectedNode)
	c, client, _ := newTest(t, pvc, DefaultClass(), testNode(""))
	if err := c.sync(context.Background(), claimPrefix+"ns/data"); err != nil {
		t.Fatal(err)
	}
	if len(client.Actions()) != 0 {
		t.Fatalf("acted before the scheduler chose: %v", client.Actions())
	}
}

func releasedVolume() *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-u1", UID: "pvuid", Annotations: map[string]string{annProvisionedBy: ProvisionerName, nodeAnnotation: "n1"}},
		Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data/st/u1"}},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased},
	}
}

func TestDeleteRunsHelperThenDeletesVolume(t *testing.T) {
	pv := releasedVolume()
	c, client, _, factory := newTestWithFactory(t, pv, testNode("/data/st"))
	if err := c.sync(context.Background(), volumePrefix+pv.Name); err != nil {
		t.Fatal(err)
	}
	helper, err := client.CoreV1().Pods(HelperNamespace).Get(context.Background(), "delete-pvc-u1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if helper.Spec.NodeName != "n1" || helper.Spec.Volumes[0].HostPath.Path != "/data/st" ||
		strings.Join(helper.Spec.Containers[0].Command, " ") != "rm -rf /data/u1" || helper.Spec.RestartPolicy != corev1.RestartPolicyNever ||
		helper.Spec.Tolerations[0].Operator != corev1.TolerationOpExists || helper.Spec.Containers[0].Image != HelperImage {
		t.Fatalf("helper %+v", helper.Spec)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(context.Background(), pv.Name, metav1.GetOptions{}); err != nil {
		t.Fatal("volume deleted before its data")
	}
	// The kubelet reports success.
	helper.Status.Phase = corev1.PodSucceeded
	_ = factory.Core().V1().Pods().Informer().GetIndexer().Add(helper)
	if err := c.sync(context.Background(), volumePrefix+pv.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(context.Background(), pv.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("volume kept after its data went")
	}
	if _, err := client.CoreV1().Pods(HelperNamespace).Get(context.Background(), helper.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("helper pod kept")
	}
}

func TestDeleteKeepsVolumeWhenNodeGoneOrHelperFails(t *testing.T) {
	pv := releasedVolume()
	c, client, rec := newTest(t, pv)
	if err := c.sync(context.Background(), volumePrefix+pv.Name); err == nil {
		t.Fatal("no error (and so no retry) for a missing node")
	}
	if ev := <-rec.Events; !strings.Contains(ev, "VolumeFailedDelete") || !strings.Contains(ev, `node "n1" is gone`) {
		t.Fatalf("event %q", ev)
	}
	pods, _ := client.CoreV1().Pods(HelperNamespace).List(context.Background(), metav1.ListOptions{})
	if len(pods.Items) != 0 {
		t.Fatal("helper pod started for a missing node")
	}

	failed := helperPod(pv, "n1", "/data/st", "u1")
	failed.Status.Phase = corev1.PodFailed
	c, client, rec = newTest(t, pv, testNode("/data/st"), failed)
	if err := c.sync(context.Background(), volumePrefix+pv.Name); err == nil {
		t.Fatal("no error (and so no retry) for a failed helper")
	}
	if ev := <-rec.Events; !strings.Contains(ev, "VolumeFailedDelete") {
		t.Fatalf("event %q", ev)
	}
	if _, err := client.CoreV1().PersistentVolumes().Get(context.Background(), pv.Name, metav1.GetOptions{}); err != nil {
		t.Fatal("volume deleted although its data was not")
	}
}

func TestSplitVolumePathRefusesOddPaths(t *testing.T) {
	for _, p := range []string{"/", "/top", "relative/x", "/a/../b", "/a/b/"} {
		pv := releasedVolume()
		pv.Spec.HostPath.Path = p
		if _, _, err := splitVolumePath(pv); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	if parent, base, err := splitVolumePath(releasedVolume()); err != nil || parent != "/data/st" || base != "u1" {
		t.Errorf("got %q %q %v", parent, base, err)
	}
}

func TestEnsureClassNeverOverwrites(t *testing.T) {
	mine := DefaultClass()
	mine.Annotations = nil // the user made it non-default
	c, client, _ := newTest(t, mine)
	if err := c.ensureClass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(client.Actions()) != 0 {
		t.Fatalf("touched the user's class: %v", client.Actions())
	}
	c, client, _ = newTest(t)
	if err := c.ensureClass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := client.StorageV1().StorageClasses().Get(context.Background(), ClassName, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}
