package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

var blockCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// fakeSys is a sysfs with loop devices: name → backing file ("" for a
// free one); each loopN has device number 7:N.
func fakeSys(t *testing.T, loops map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, file := range loops {
		d := filepath.Join(dir, "block", name)
		if err := os.MkdirAll(filepath.Join(d, "loop"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "dev"), []byte("7:"+strings.TrimPrefix(name, "loop")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if file != "" {
			if err := os.WriteFile(filepath.Join(d, "loop", "backing_file"), []byte(file+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestCreateBlockVolume(t *testing.T) {
	c := newController(t)
	req := &csi.CreateVolumeRequest{Name: "blk", VolumeCapabilities: []*csi.VolumeCapability{blockCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20}}
	if _, err := c.CreateVolume(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ValidateVolumeCapabilities(context.Background(), &csi.ValidateVolumeCapabilitiesRequest{
		VolumeId: "blk", VolumeCapabilities: []*csi.VolumeCapability{blockCap}})
	if err != nil || resp.GetConfirmed() == nil {
		t.Errorf("block capability not confirmed: %v, %v", resp, err)
	}
}

// The backing file is sparse, of the volume's size (the default for a
// volume made by hand), made once, and goes with the volume.
func TestBlockFile(t *testing.T) {
	c := newController(t)
	st := c.state
	if _, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "sized", VolumeCapabilities: []*csi.VolumeCapability{blockCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20}}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(st.volumeDir("static"), 0o755); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int64{"sized": 8 << 20, "static": defaultCapacity} {
		if err := st.ensureBlockFile(id); err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(st.blockFile(id))
		if err != nil || info.Size() != want {
			t.Fatalf("%s: backing file %v, %v; want %d bytes", id, info, err, want)
		}
	}
	// Made once: data written stays.
	if err := os.WriteFile(st.blockFile("sized"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.ensureBlockFile("sized"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(st.blockFile("sized")); string(b) != "data" {
		t.Errorf("backing file rewritten: %q", b)
	}
	if _, err := c.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: "sized"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.blockFile("sized")); !os.IsNotExist(err) {
		t.Errorf("backing file left after DeleteVolume: %v", err)
	}
}

func TestLoopOf(t *testing.T) {
	b := &blockDevices{devDir: t.TempDir(), sysDir: fakeSys(t, map[string]string{"loop0": "", "loop3": "/state/devices/v1", "loop12": "/other"})}
	for file, want := range map[string]string{"/state/devices/v1": "loop3", "/other": "loop12", "/state/devices/v2": ""} {
		if got, err := b.loopOf(file); err != nil || got != want {
			t.Errorf("loopOf(%s) = %q, %v; want %q", file, got, err, want)
		}
	}
	// An existing node is used as is; a bad device number is an error.
	if err := os.Mkdir(filepath.Join(b.sysDir, "block", "loop9"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.sysDir, "block", "loop9", "dev"), []byte("7-9"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.node("loop9"); err == nil || !strings.Contains(err.Error(), "bad device number") {
		t.Errorf("node(loop9) err = %v", err)
	}
}

// Publishing a Block volume that is not staged (no loop device backs it)
// fails without creating the target.
func TestPublishBlockNeedsStaging(t *testing.T) {
	st, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := &node{state: st, nodeID: "n1", devices: &blockDevices{devDir: t.TempDir(), sysDir: fakeSys(t, nil)}}
	target := filepath.Join(t.TempDir(), "uid")
	_, err = n.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: "v", StagingTargetPath: t.TempDir(), TargetPath: target, VolumeCapability: blockCap})
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("target made: %v", err)
	}
}

// With CSI_TESTDRIVER_LOOP=1, as root, a Block volume goes through the
// node calls on this machine's loop devices: the published target is a
// block device. It changes the machine's state (for the test's length),
// so it does not run by default.
func TestBlockNodeCallsOnLoopDevices(t *testing.T) {
	if os.Getenv("CSI_TESTDRIVER_LOOP") != "1" || os.Getuid() != 0 {
		t.Skip("set CSI_TESTDRIVER_LOOP=1 and run as root")
	}
	ctx := context.Background()
	c := newController(t)
	if _, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "blk", VolumeCapabilities: []*csi.VolumeCapability{blockCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 4 << 20}}); err != nil {
		t.Fatal(err)
	}
	n := &node{state: c.state, nodeID: "n1", devices: &blockDevices{devDir: t.TempDir(), sysDir: "/sys"}}
	// The driver makes loop nodes in /dev; the test, in its own directory.
	if err := os.Symlink("/dev/loop-control", filepath.Join(n.devices.devDir, "loop-control")); err != nil {
		t.Fatal(err)
	}
	staging, target := t.TempDir(), filepath.Join(t.TempDir(), "uid")
	pc := map[string]string{publishContextKey: "n1"}
	if _, err := n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "blk", StagingTargetPath: staging, VolumeCapability: blockCap, PublishContext: pc}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.devices.detach(c.state.blockFile("blk")) })
	for range 2 { // retried publishes succeed
		if _, err := n.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "blk", StagingTargetPath: staging, TargetPath: target, VolumeCapability: blockCap}); err != nil {
			t.Fatal(err)
		}
	}
	var stat unix.Stat_t
	if err := unix.Lstat(target, &stat); err != nil || stat.Mode&unix.S_IFMT != unix.S_IFBLK {
		t.Fatalf("target %s: mode %o, %v; want a block device", target, stat.Mode, err)
	}
	if _, err := n.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "blk", TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("target left after unpublish: %v", err)
	}
	if _, err := n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "blk", StagingTargetPath: staging}); err != nil {
		t.Fatal(err)
	}
	if loop, err := n.devices.loopOf(c.state.blockFile("blk")); err != nil || loop != "" {
		t.Errorf("loop device left after unstage: %q, %v", loop, err)
	}
}
