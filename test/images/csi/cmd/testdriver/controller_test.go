package main

import (
	"context"
	"os"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var mountCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

func newController(t *testing.T) *controller {
	t.Helper()
	st, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &controller{state: st}
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
}

func TestVolumeLifecycle(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	req := &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 20}}
	for range 2 { // retried creates find the same volume
		resp, err := c.CreateVolume(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if v := resp.GetVolume(); v.GetVolumeId() != "pvc-1" || v.GetCapacityBytes() != 1<<20 {
			t.Fatalf("volume %v", v)
		}
	}
	if _, err := os.Stat(c.state.volumeDir("pvc-1")); err != nil {
		t.Fatalf("volume directory: %v", err)
	}

	pub := &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-1", NodeId: "n1", VolumeCapability: mountCap}
	resp, err := c.ControllerPublishVolume(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetPublishContext()[publishContextKey]; got != "n1" {
		t.Fatalf("publish context names %q, want n1", got)
	}
	if _, err := c.ControllerPublishVolume(ctx, pub); err != nil {
		t.Fatalf("publishing again to the same node: %v", err)
	}
	_, err = c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "pvc-1", NodeId: "n2", VolumeCapability: mountCap})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-1"})
	wantCode(t, err, codes.FailedPrecondition)

	for range 2 { // detaching twice succeeds
		if _, err := c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: "pvc-1", NodeId: "n1"}); err != nil {
			t.Fatal(err)
		}
	}
	if node, _ := c.state.attachedTo("pvc-1"); node != "" {
		t.Fatalf("still attached to %q", node)
	}
	for range 2 { // deleting twice succeeds
		if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(c.state.volumeDir("pvc-1")); !os.IsNotExist(err) {
		t.Fatalf("volume directory after delete: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	_, err := c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "missing", NodeId: "n1", VolumeCapability: mountCap})
	wantCode(t, err, codes.NotFound)
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "../escape", VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
	wantCode(t, err, codes.InvalidArgument)
	block := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}}
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "b", VolumeCapabilities: []*csi.VolumeCapability{block}})
	wantCode(t, err, codes.InvalidArgument)
}

func TestNodeStageRefusesVolumeNotAttachedHere(t *testing.T) {
	st, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := &node{state: st, nodeID: "n1"}
	_, err = n.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{
		VolumeId: "v", StagingTargetPath: t.TempDir(), VolumeCapability: mountCap,
		PublishContext: map[string]string{publishContextKey: "n2"},
	})
	wantCode(t, err, codes.FailedPrecondition)
}

func TestUnescapeMountPath(t *testing.T) {
	if got := unescapeMountPath(`/a\040b/c`); got != "/a b/c" {
		t.Fatalf("got %q", got)
	}
	if got := unescapeMountPath(`/plain`); got != "/plain" {
		t.Fatalf("got %q", got)
	}
}
