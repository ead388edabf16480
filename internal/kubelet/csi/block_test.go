package csi

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func testBlockPV(handle string) *v1.PersistentVolume {
	pv := testPV(handle)
	pv.Spec.VolumeMode = ptr.To(v1.PersistentVolumeBlock)
	pv.Spec.MountOptions, pv.Spec.CSI.FSType = nil, ""
	return pv
}

// blockCapability checks a Block volume's capability: no mount, RWX
// (the PV's first mode).
func blockCapability(t *testing.T, what string, c *csipb.VolumeCapability) {
	t.Helper()
	if c.GetBlock() == nil || c.GetMount() != nil {
		t.Errorf("%s: capability %v, want access type Block", what, c)
	}
	if c.GetAccessMode().GetMode() != csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER {
		t.Errorf("%s: access mode = %v, want RWX", what, c.GetAccessMode().GetMode())
	}
}

// A Block volume is staged at a directory and published at a file, at
// upstream's paths, with a Block capability; the file is what the kubelet
// hands to the runtime. A pod fsGroup reaches neither call.
func TestMapBlockVolume(t *testing.T) {
	env := newEnvWithDriver(t, &fakeNodeService{stages: true, mountGroup: true})
	env.addObjects(t, false)
	pod := testPod("uid-1")
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr.To[int64](1234)}
	pv := testBlockPV("vol-b")

	dev, err := env.m.MapBlock(t.Context(), pod, "data", pv, true)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(env.m.cfg.DataDir, "plugins", "kubernetes.io", "csi", "volumeDevices")
	wantTarget := filepath.Join(root, "publish", "pv-vol-b", "uid-1")
	wantStaging := filepath.Join(root, "staging", "pv-vol-b")
	if dev != wantTarget {
		t.Errorf("device = %s, want %s", dev, wantTarget)
	}
	if info, err := os.Stat(dev); err != nil || !info.Mode().IsRegular() {
		t.Errorf("published device %s: %v, %v; want the driver's file", dev, info, err)
	}
	if info, err := os.Stat(wantStaging); err != nil || !info.IsDir() {
		t.Errorf("staging path %s: %v, %v; want a directory", wantStaging, info, err)
	}

	stages := callsOf[*csipb.NodeStageVolumeRequest](env.node)
	if len(stages) != 1 {
		t.Fatalf("NodeStageVolume calls = %d, want 1", len(stages))
	}
	st := stages[0]
	if st.VolumeId != "vol-b" || st.StagingTargetPath != wantStaging || st.Secrets["key"] != "s1" || st.VolumeContext["size"] != "1Gi" {
		t.Errorf("stage request = %v", st)
	}
	blockCapability(t, "stage", st.VolumeCapability)
	pubs := callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(pubs) != 1 {
		t.Fatalf("NodePublishVolume calls = %d, want 1", len(pubs))
	}
	p := pubs[0]
	if p.VolumeId != "vol-b" || p.TargetPath != wantTarget || p.StagingTargetPath != wantStaging || !p.Readonly || p.Secrets["key"] != "p1" {
		t.Errorf("publish request = %v", p)
	}
	blockCapability(t, "publish", p.VolumeCapability)

	// The pod volume's record says what teardown unpublishes.
	rec, err := readRecord(env.m.PodVolumeDir(pod.UID, "data"))
	if err != nil || !rec.Block || rec.TargetPath != wantTarget || rec.StagingPath != wantStaging || !rec.Published {
		t.Errorf("pod volume record = %+v, %v", rec, err)
	}
	if _, err := readRecord(filepath.Join(root, "pv-vol-b", "data")); err != nil {
		t.Errorf("staged record: %v", err)
	}
	want := []v1.UniqueVolumeName{UniqueName(testDriver, "vol-b")}
	if got := env.m.VolumesInUse(); !slices.Equal(got, want) {
		t.Errorf("volumes in use = %v, want %v", got, want)
	}

	// Later syncs find the volume published and call nothing.
	if again, err := env.m.MapBlock(t.Context(), pod, "data", pv, true); err != nil || again != dev {
		t.Fatalf("resync: %s, %v", again, err)
	}
	if n := len(callsOf[*csipb.NodePublishVolumeRequest](env.node)); n != 1 {
		t.Errorf("NodePublishVolume calls after resync = %d, want 1", n)
	}
}

// A driver without STAGE_UNSTAGE_VOLUME is only published, and no
// staging path reaches it.
func TestMapBlockVolumeWithoutStaging(t *testing.T) {
	env := newRegisteredEnv(t, false)
	env.addObjects(t, false)
	pod := testPod("uid-n")
	if _, err := env.m.MapBlock(t.Context(), pod, "data", testBlockPV("vol-n"), false); err != nil {
		t.Fatal(err)
	}
	if n := len(callsOf[*csipb.NodeStageVolumeRequest](env.node)); n != 0 {
		t.Errorf("NodeStageVolume calls = %d, want none", n)
	}
	pubs := callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(pubs) != 1 || pubs[0].StagingTargetPath != "" || pubs[0].Readonly {
		t.Fatalf("publish calls = %v, want one, writable, without a staging path", pubs)
	}
	if err := env.m.TearDownPod(t.Context(), pod.UID); err != nil {
		t.Fatal(err)
	}
	if n := len(callsOf[*csipb.NodeUnstageVolumeRequest](env.node)); n != 0 {
		t.Errorf("NodeUnstageVolume calls = %d, want none", n)
	}
	if _, err := os.Stat(filepath.Dir(pubs[0].TargetPath)); !os.IsNotExist(err) {
		t.Errorf("publish directory left behind (err %v)", err)
	}
}

// Teardown, which knows only the pod's UID, unpublishes the pod's file and
// unstages once the last pod using the volume is gone, removing the
// directories the kubelet made.
func TestBlockTeardownUnstagesAfterLastUser(t *testing.T) {
	env := newRegisteredEnv(t, true)
	env.addObjects(t, false)
	ctx := t.Context()
	first, second := testPod("uid-a"), testPod("uid-b")
	devs := map[*v1.Pod]string{}
	for _, pod := range []*v1.Pod{first, second} {
		dev, err := env.m.MapBlock(ctx, pod, "disk", testBlockPV("vol-t"), false)
		if err != nil {
			t.Fatal(err)
		}
		devs[pod] = dev
	}
	if n := len(callsOf[*csipb.NodeStageVolumeRequest](env.node)); n != 1 {
		t.Fatalf("NodeStageVolume calls = %d, want one per node", n)
	}
	staging := callsOf[*csipb.NodeStageVolumeRequest](env.node)[0].StagingTargetPath

	if err := env.m.TearDownPod(ctx, first.UID); err != nil {
		t.Fatal(err)
	}
	unpubs := callsOf[*csipb.NodeUnpublishVolumeRequest](env.node)
	if len(unpubs) != 1 || unpubs[0].VolumeId != "vol-t" || unpubs[0].TargetPath != devs[first] {
		t.Fatalf("unpublish calls = %v, want the first pod's file %s", unpubs, devs[first])
	}
	if n := len(callsOf[*csipb.NodeUnstageVolumeRequest](env.node)); n != 0 {
		t.Fatal("volume unstaged while another pod uses it")
	}
	if _, err := os.Stat(devs[second]); err != nil {
		t.Errorf("second pod's device: %v", err)
	}
	if len(env.m.VolumesInUse()) != 1 {
		t.Errorf("volumes in use = %v, want the volume still in use", env.m.VolumesInUse())
	}

	if err := env.m.TearDownPod(ctx, second.UID); err != nil {
		t.Fatal(err)
	}
	unstages := callsOf[*csipb.NodeUnstageVolumeRequest](env.node)
	if len(unstages) != 1 || unstages[0].VolumeId != "vol-t" || unstages[0].StagingTargetPath != staging {
		t.Fatalf("unstage calls = %v, want one for %s", unstages, staging)
	}
	if got := env.m.VolumesInUse(); len(got) != 0 {
		t.Errorf("volumes in use after teardown = %v", got)
	}
	root := filepath.Join(env.m.cfg.DataDir, "plugins", "kubernetes.io", "csi", "volumeDevices")
	for _, dir := range []string{
		staging, filepath.Join(root, "publish", "pv-vol-t"), filepath.Join(root, "pv-vol-t"),
		env.m.PodVolumeDir(first.UID, "disk"), env.m.PodVolumeDir(second.UID, "disk"),
	} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left behind (err %v)", dir, err)
		}
	}
}

// A Block volume is never mounted and a Filesystem one never mapped, with
// the kubelet's words for it; the driver is not called.
func TestVolumeModeMismatch(t *testing.T) {
	env := newRegisteredEnv(t, true)
	env.addObjects(t, false)
	ctx := t.Context()
	pod := testPod("uid-m")
	if _, err := env.m.SetUpPersistent(ctx, pod, "data", testBlockPV("vol-m"), false); err == nil ||
		err.Error() != "volume data has volumeMode Block, but is specified in volumeMounts" {
		t.Errorf("mounting a Block volume: err = %v", err)
	}
	fs := testPV("vol-f")
	for _, mode := range []*v1.PersistentVolumeMode{nil, ptr.To(v1.PersistentVolumeFilesystem)} {
		fs.Spec.VolumeMode = mode
		if _, err := env.m.MapBlock(ctx, pod, "data", fs, false); err == nil ||
			err.Error() != "volume data has volumeMode Filesystem, but is specified in volumeDevices" {
			t.Errorf("mapping a Filesystem volume (mode %v): err = %v", mode, err)
		}
	}
	if n := len(env.node.calls); n != 0 {
		t.Errorf("driver called %d times", n)
	}
}
