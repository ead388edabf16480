package csi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func testPod(uid string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-" + uid, Namespace: "ns", UID: types.UID(uid)},
		Spec: v1.PodSpec{ServiceAccountName: "sa"}}
}

func testPV(handle string) *v1.PersistentVolume {
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-" + handle},
		Spec: v1.PersistentVolumeSpec{
			AccessModes:  []v1.PersistentVolumeAccessMode{v1.ReadWriteMany, v1.ReadWriteOnce},
			MountOptions: []string{"noatime"},
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{
				Driver: testDriver, VolumeHandle: handle, FSType: "ext4",
				VolumeAttributes:     map[string]string{"size": "1Gi"},
				NodeStageSecretRef:   &v1.SecretReference{Name: "stage", Namespace: "secrets"},
				NodePublishSecretRef: &v1.SecretReference{Name: "publish", Namespace: "secrets"},
			}},
		},
	}
}

func (env *testEnv) addObjects(t *testing.T, attachRequired bool) {
	t.Helper()
	ctx := t.Context()
	for name, value := range map[string]string{"stage": "s1", "publish": "p1"} {
		s := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "secrets"}, Data: map[string][]byte{"key": []byte(value)}}
		if _, err := env.client.CoreV1().Secrets("secrets").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver},
		Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(attachRequired)}}
	if _, err := env.client.StorageV1().CSIDrivers().Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func sha(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }

func TestStageAndPublishPersistentVolume(t *testing.T) {
	env := newRegisteredEnv(t, true)
	env.addObjects(t, false)
	pod := testPod("uid-1")

	path, err := env.m.SetUpPersistent(t.Context(), pod, "data", testPV("vol-1"), true)
	if err != nil {
		t.Fatal(err)
	}
	wantTarget := filepath.Join(env.m.cfg.PodsDir, "uid-1", "volumes", "kubernetes.io~csi", "data", "mount")
	if path != wantTarget {
		t.Errorf("path = %s, want %s", path, wantTarget)
	}
	wantStaging := filepath.Join(env.m.cfg.DataDir, "plugins", "kubernetes.io", "csi", testDriver, sha("vol-1"), "globalmount")
	wantCap := func(c *csipb.VolumeCapability) error {
		m := c.GetMount()
		if m.GetFsType() != "ext4" || !slices.Equal(m.GetMountFlags(), []string{"noatime"}) {
			return fmt.Errorf("mount capability = %v", m)
		}
		if c.GetAccessMode().GetMode() != csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER {
			return fmt.Errorf("access mode = %v, want the first PV mode (RWX)", c.GetAccessMode().GetMode())
		}
		return nil
	}

	stages := callsOf[*csipb.NodeStageVolumeRequest](env.node)
	if len(stages) != 1 {
		t.Fatalf("NodeStageVolume calls = %d, want 1", len(stages))
	}
	st := stages[0]
	if st.VolumeId != "vol-1" || st.StagingTargetPath != wantStaging || st.Secrets["key"] != "s1" || st.VolumeContext["size"] != "1Gi" {
		t.Errorf("stage request = %v", st)
	}
	if err := wantCap(st.VolumeCapability); err != nil {
		t.Errorf("stage: %v", err)
	}
	pubs := callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(pubs) != 1 {
		t.Fatalf("NodePublishVolume calls = %d, want 1", len(pubs))
	}
	p := pubs[0]
	if p.VolumeId != "vol-1" || p.TargetPath != wantTarget || p.StagingTargetPath != wantStaging || !p.Readonly || p.Secrets["key"] != "p1" {
		t.Errorf("publish request = %v", p)
	}
	if _, ok := p.VolumeContext["csi.storage.k8s.io/pod.name"]; ok {
		t.Errorf("pod info sent without podInfoOnMount: %v", p.VolumeContext)
	}
	if err := wantCap(p.VolumeCapability); err != nil {
		t.Errorf("publish: %v", err)
	}

	// Later syncs find the volume published and call nothing.
	if _, err := env.m.SetUpPersistent(t.Context(), pod, "data", testPV("vol-1"), true); err != nil {
		t.Fatal(err)
	}
	if n := len(callsOf[*csipb.NodePublishVolumeRequest](env.node)); n != 1 {
		t.Errorf("NodePublishVolume calls after resync = %d, want 1", n)
	}
	if got := env.m.VolumesInUse(); !slices.Equal(got, []v1.UniqueVolumeName{"kubernetes.io/csi/" + testDriver + "^vol-1"}) {
		t.Errorf("volumes in use = %v", got)
	}
}

func TestAttachRequiredWaitsForVolumeAttachment(t *testing.T) {
	env := newRegisteredEnv(t, true) // no CSIDriver object: attach is required
	pv := testPV("vol-2")
	pv.Spec.CSI.NodeStageSecretRef, pv.Spec.CSI.NodePublishSecretRef = nil, nil
	pod := testPod("uid-2")
	ctx := t.Context()

	if _, err := env.m.SetUpPersistent(ctx, pod, "data", pv, false); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("set up without a VolumeAttachment: err = %v, want ErrNotAttached", err)
	}
	name := "csi-" + sha("vol-2"+testDriver+testNode)
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: testDriver, NodeName: testNode,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: &pv.Name}},
	}
	va, err := env.client.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.m.SetUpPersistent(ctx, pod, "data", pv, false); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("set up before attach: err = %v, want ErrNotAttached", err)
	}
	if n := len(env.node.calls); n != 0 {
		t.Fatalf("driver called %d times before the volume was attached", n)
	}

	va.Status = storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"devicePath": "/dev/sdx"}}
	if _, err := env.client.StorageV1().VolumeAttachments().UpdateStatus(ctx, va, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.m.SetUpPersistent(ctx, pod, "data", pv, false); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"devicePath": "/dev/sdx"}
	stages := callsOf[*csipb.NodeStageVolumeRequest](env.node)
	pubs := callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(stages) != 1 || !maps.Equal(stages[0].PublishContext, want) {
		t.Errorf("stage calls = %v, want one with the attachment metadata", stages)
	}
	if len(pubs) != 1 || !maps.Equal(pubs[0].PublishContext, want) {
		t.Errorf("publish calls = %v, want one with the attachment metadata", pubs)
	}
}

func TestTeardownUnstagesAfterLastUser(t *testing.T) {
	env := newRegisteredEnv(t, true)
	env.addObjects(t, false)
	ctx := t.Context()
	first, second := testPod("uid-a"), testPod("uid-b")
	for _, pod := range []*v1.Pod{first, second} {
		if _, err := env.m.SetUpPersistent(ctx, pod, "data", testPV("vol-3"), false); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(callsOf[*csipb.NodeStageVolumeRequest](env.node)); n != 1 {
		t.Fatalf("NodeStageVolume calls = %d, want one per node", n)
	}
	staging := callsOf[*csipb.NodeStageVolumeRequest](env.node)[0].StagingTargetPath

	if err := env.m.TearDownPod(ctx, first.UID); err != nil {
		t.Fatal(err)
	}
	unpubs := callsOf[*csipb.NodeUnpublishVolumeRequest](env.node)
	if len(unpubs) != 1 || unpubs[0].TargetPath != targetPath(env.m.PodVolumeDir(first.UID, "data")) {
		t.Fatalf("unpublish calls = %v, want the first pod's target", unpubs)
	}
	if n := len(callsOf[*csipb.NodeUnstageVolumeRequest](env.node)); n != 0 {
		t.Fatal("volume unstaged while another pod uses it")
	}
	if len(env.m.VolumesInUse()) != 1 {
		t.Errorf("volumes in use = %v, want the volume still in use", env.m.VolumesInUse())
	}

	if err := env.m.TearDownPod(ctx, second.UID); err != nil {
		t.Fatal(err)
	}
	unstages := callsOf[*csipb.NodeUnstageVolumeRequest](env.node)
	if len(unstages) != 1 || unstages[0].VolumeId != "vol-3" || unstages[0].StagingTargetPath != staging {
		t.Fatalf("unstage calls = %v, want one for %s", unstages, staging)
	}
	if got := env.m.VolumesInUse(); len(got) != 0 {
		t.Errorf("volumes in use after teardown = %v", got)
	}
	for _, dir := range []string{filepath.Dir(staging), env.m.PodVolumeDir(second.UID, "data")} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left behind (err %v)", dir, err)
		}
	}
	// Teardown of a pod without CSI volumes, or done already, is a no-op.
	if err := env.m.TearDownPod(ctx, second.UID); err != nil {
		t.Fatal(err)
	}
}

func TestEphemeralInlineVolume(t *testing.T) {
	env := newRegisteredEnv(t, true)
	ctx := t.Context()
	pod := testPod("uid-e")
	src := &v1.CSIVolumeSource{Driver: testDriver, VolumeAttributes: map[string]string{"size": "1Mi"}}

	if _, err := env.m.SetUpEphemeral(ctx, pod, "scratch", src); err == nil || !strings.Contains(err.Error(), "Ephemeral") {
		t.Fatalf("err = %v, want a refusal: no CSIDriver allows ephemeral volumes", err)
	}
	d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver}, Spec: storagev1.CSIDriverSpec{
		PodInfoOnMount:       ptr.To(true),
		VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral},
	}}
	if _, err := env.client.StorageV1().CSIDrivers().Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.m.SetUpEphemeral(ctx, pod, "scratch", src); err != nil {
		t.Fatal(err)
	}
	if n := len(callsOf[*csipb.NodeStageVolumeRequest](env.node)); n != 0 {
		t.Errorf("ephemeral volume staged %d times", n)
	}
	pubs := callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(pubs) != 1 {
		t.Fatalf("publish calls = %d", len(pubs))
	}
	p := pubs[0]
	wantCtx := map[string]string{
		"size": "1Mi", "csi.storage.k8s.io/pod.name": "pod-uid-e", "csi.storage.k8s.io/pod.namespace": "ns",
		"csi.storage.k8s.io/pod.uid": "uid-e", "csi.storage.k8s.io/serviceAccount.name": "sa", "csi.storage.k8s.io/ephemeral": "true",
	}
	if p.VolumeId != "csi-"+sha("uid-e"+"scratch") || p.StagingTargetPath != "" || !maps.Equal(p.VolumeContext, wantCtx) {
		t.Errorf("publish request = %v", p)
	}
	if got := env.m.VolumesInUse(); len(got) != 0 {
		t.Errorf("ephemeral volume reported in use: %v", got)
	}
	if err := env.m.TearDownPod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	if n := len(callsOf[*csipb.NodeUnpublishVolumeRequest](env.node)); n != 1 {
		t.Errorf("unpublish calls = %d, want 1", n)
	}
}

func TestSetUpNeedsRegisteredDriver(t *testing.T) {
	env := newRegisteredEnv(t, false)
	pv := testPV("vol-4")
	pv.Spec.CSI.Driver = "other.csi.example.com"
	_, err := env.m.SetUpPersistent(t.Context(), testPod("uid-x"), "data", pv, false)
	if err == nil || !strings.Contains(err.Error(), "not found in the list of registered CSI drivers") {
		t.Fatalf("err = %v", err)
	}
	// Teardown also needs the driver, and keeps the record until it is back.
	env.reg.stop()
	env.m.watcher.sync(t.Context())
	pod := testPod("uid-y")
	dir := env.m.PodVolumeDir(pod.UID, "data")
	if err := writeRecord(dir, &volumeRecord{Driver: testDriver, Handle: "vol-5", Published: true}); err != nil {
		t.Fatal(err)
	}
	if err := env.m.TearDownPod(t.Context(), pod.UID); err == nil {
		t.Fatal("teardown without the driver succeeded")
	}
	if _, err := readRecord(dir); err != nil {
		t.Errorf("record removed though the volume was not unpublished: %v", err)
	}
}

// An attachable volume is in node.status.volumesInUse before the driver
// is asked to mount it, so the attach/detach controller never detaches it
// under a mount.
func TestAttachableVolumeReportedInUseBeforeStaging(t *testing.T) {
	env := newRegisteredEnv(t, true)
	pv := testPV("vol-3")
	pv.Spec.CSI.NodeStageSecretRef, pv.Spec.CSI.NodePublishSecretRef = nil, nil
	pod := testPod("uid-3")
	ctx := t.Context()
	var reported [][]v1.UniqueVolumeName
	var driverCallsAtReport []int
	env.m.cfg.ReportInUse = func(context.Context) error {
		reported = append(reported, env.m.VolumesInUse())
		driverCallsAtReport = append(driverCallsAtReport,
			len(callsOf[*csipb.NodeStageVolumeRequest](env.node))+len(callsOf[*csipb.NodePublishVolumeRequest](env.node)))
		return nil
	}
	name := "csi-" + sha("vol-3"+testDriver+testNode)
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.VolumeAttachmentSpec{Attacher: testDriver, NodeName: testNode,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: &pv.Name}},
		Status: storagev1.VolumeAttachmentStatus{Attached: true},
	}
	if _, err := env.client.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.m.SetUpPersistent(ctx, pod, "data", pv, false); err != nil {
		t.Fatal(err)
	}
	want := UniqueName(testDriver, "vol-3")
	if len(reported) != 1 || !slices.Contains(reported[0], want) {
		t.Fatalf("volumes reported in use = %v, want one report listing %s", reported, want)
	}
	if driverCallsAtReport[0] != 0 {
		t.Errorf("the driver had %d calls before the volume was reported in use, want none", driverCallsAtReport[0])
	}
	if n := len(callsOf[*csipb.NodeStageVolumeRequest](env.node)); n != 1 {
		t.Errorf("NodeStageVolume calls = %d, want 1", n)
	}

	// A failed report stops the set-up before any mount.
	env.m.cfg.ReportInUse = func(context.Context) error { return errors.New("apiserver down") }
	if _, err := env.m.SetUpPersistent(ctx, testPod("uid-4"), "data", pv, false); err == nil {
		t.Fatal("set up went on after the volume could not be reported in use")
	}
	if n := len(callsOf[*csipb.NodePublishVolumeRequest](env.node)); n != 1 {
		t.Errorf("NodePublishVolume calls = %d, want only the first pod's", n)
	}
}
