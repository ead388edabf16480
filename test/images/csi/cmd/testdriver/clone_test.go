package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

func cloneRequest(name, src string, size int64, caps ...*csi.VolumeCapability) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{Name: name, VolumeCapabilities: caps,
		CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
			Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: src}}}}
}

func TestCloneCopiesTheSourceVolume(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	requireControllerCap(t, c, csi.ControllerServiceCapability_RPC_CLONE_VOLUME)
	if _, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "src", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	srcDir := c.state.volumeDir("src")
	if err := os.MkdirAll(filepath.Join(srcDir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srcDir, "sub", "data"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/data", filepath.Join(srcDir, "link")); err != nil {
		t.Fatal(err)
	}

	req := cloneRequest("copy", "src", 2<<20, mountCap)
	for range 2 { // a retry finds the same clone
		resp, err := c.CreateVolume(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.GetVolume(); v.GetCapacityBytes() != 2<<20 || v.GetContentSource().GetVolume().GetVolumeId() != "src" {
			t.Fatalf("volume = %v", v)
		}
	}
	dst := c.state.volumeDir("copy")
	b, err := os.ReadFile(filepath.Join(dst, "link"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("clone's data through its link = %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(dst, "sub", "data")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("clone's file = %v, %v, want mode 0640", st, err)
	}
	// The clone is its own: writing it leaves the source alone.
	if err := os.WriteFile(filepath.Join(dst, "sub", "data"), []byte("changed"), 0o640); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(srcDir, "sub", "data")); string(b) != "hello" {
		t.Errorf("source's data = %q", b)
	}
	if _, err := os.Stat(c.state.cloneDir("copy")); !os.IsNotExist(err) {
		t.Errorf("clone staging dir left behind: %v", err)
	}
}

func TestCloneRefusals(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	for _, v := range []*csi.CreateVolumeRequest{
		{Name: "src", VolumeCapabilities: []*csi.VolumeCapability{mountCap}, CapacityRange: &csi.CapacityRange{RequiredBytes: 4 << 20}},
		{Name: "blk", VolumeCapabilities: []*csi.VolumeCapability{blockCap}, CapacityRange: &csi.CapacityRange{RequiredBytes: 4 << 20}},
	} {
		if _, err := c.CreateVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.state.ensureBlockFile("blk"); err != nil { // as staging makes it
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  *csi.CreateVolumeRequest
		code codes.Code
	}{
		{"missing source", cloneRequest("c1", "nope", 4<<20, mountCap), codes.NotFound},
		{"smaller", cloneRequest("c2", "src", 1<<20, mountCap), codes.OutOfRange},
		{"block request", cloneRequest("c3", "src", 4<<20, blockCap), codes.InvalidArgument},
		{"block source", cloneRequest("c4", "blk", 4<<20, mountCap), codes.InvalidArgument},
		{"snapshot", &csi.CreateVolumeRequest{Name: "c5", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
			VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
				Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "s1"}}}}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateVolume(ctx, tc.req)
			wantCode(t, err, tc.code)
			if _, err := os.Stat(c.state.volumeDir(tc.req.Name)); !os.IsNotExist(err) {
				t.Errorf("volume %s made: %v", tc.req.Name, err)
			}
		})
	}
}
