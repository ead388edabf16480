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

// CreateVolume is idempotent by name: a retry with a compatible range
// returns the recorded volume, an incompatible one is AlreadyExists; the
// size follows the range and DeleteVolume drops the record with the
// directory.
func TestCreateVolumeCapacityAndIdempotency(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	create := func(name string, r *csi.CapacityRange) (*csi.Volume, error) {
		resp, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name,
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}, CapacityRange: r})
		return resp.GetVolume(), err
	}
	v, err := create("pvc-a", &csi.CapacityRange{RequiredBytes: 5 << 20, LimitBytes: 8 << 20})
	if err != nil || v.GetCapacityBytes() != 5<<20 {
		t.Fatalf("create: %v, %v; want 5MiB", v, err)
	}
	// A retry whose range still holds 5MiB gets the same volume.
	if v, err := create("pvc-a", &csi.CapacityRange{RequiredBytes: 1 << 20}); err != nil || v.GetCapacityBytes() != 5<<20 {
		t.Fatalf("compatible retry: %v, %v; want the 5MiB volume", v, err)
	}
	_, err = create("pvc-a", &csi.CapacityRange{RequiredBytes: 6 << 20})
	wantCode(t, err, codes.AlreadyExists)
	_, err = create("pvc-a", &csi.CapacityRange{LimitBytes: 4 << 20})
	wantCode(t, err, codes.AlreadyExists)

	_, err = create("pvc-b", &csi.CapacityRange{RequiredBytes: 2 << 20, LimitBytes: 1 << 20})
	wantCode(t, err, codes.OutOfRange)
	if _, err := os.Stat(c.state.volumeDir("pvc-b")); !os.IsNotExist(err) {
		t.Fatalf("refused volume has a directory: %v", err)
	}
	if v, err := create("pvc-c", &csi.CapacityRange{LimitBytes: 3 << 20}); err != nil || v.GetCapacityBytes() != 3<<20 {
		t.Fatalf("limit only: %v, %v; want 3MiB", v, err)
	}
	if v, err := create("pvc-d", nil); err != nil || v.GetCapacityBytes() != defaultCapacity {
		t.Fatalf("no range: %v, %v; want the default", v, err)
	}
	// A directory made by hand (a static volume) has no size to disagree.
	if err := os.MkdirAll(c.state.volumeDir("static"), 0o755); err != nil {
		t.Fatal(err)
	}
	if v, err := create("static", &csi.CapacityRange{RequiredBytes: 9 << 20}); err != nil || v.GetCapacityBytes() != 9<<20 {
		t.Fatalf("hand-made volume: %v, %v; want 9MiB", v, err)
	}

	for range 2 {
		if _, err := c.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "pvc-a"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(c.state.capacityFile("pvc-a")); !os.IsNotExist(err) {
		t.Fatalf("capacity record after delete: %v", err)
	}
	// The name is free again: any size goes.
	if v, err := create("pvc-a", &csi.CapacityRange{RequiredBytes: 7 << 20}); err != nil || v.GetCapacityBytes() != 7<<20 {
		t.Fatalf("recreate: %v, %v; want 7MiB", v, err)
	}
}

func TestCreateVolumeTopology(t *testing.T) {
	c := newController(t)
	seg := func(n string) *csi.Topology { return &csi.Topology{Segments: map[string]string{topologyKey: n}} }
	for _, tt := range []struct {
		name string
		ar   *csi.TopologyRequirement
		want string
	}{
		{"preferred first", &csi.TopologyRequirement{Requisite: []*csi.Topology{seg("n2"), seg("n1")}, Preferred: []*csi.Topology{seg("n1"), seg("n2")}}, "n1"},
		{"requisite without preferences", &csi.TopologyRequirement{Requisite: []*csi.Topology{seg("n2")}}, "n2"},
		{"none", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "v-" + tt.want,
				VolumeCapabilities: []*csi.VolumeCapability{mountCap}, AccessibilityRequirements: tt.ar})
			if err != nil {
				t.Fatal(err)
			}
			got := resp.GetVolume().GetAccessibleTopology()
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("topology %v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].GetSegments()[topologyKey] != tt.want {
				t.Fatalf("topology %v, want %s only", got, tt.want)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	_, err := c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "missing", NodeId: "n1", VolumeCapability: mountCap})
	wantCode(t, err, codes.NotFound)
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "../escape", VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
	wantCode(t, err, codes.InvalidArgument)
	noAccessType := &csi.VolumeCapability{AccessMode: mountCap.AccessMode}
	_, err = c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "b", VolumeCapabilities: []*csi.VolumeCapability{noAccessType}})
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

func TestGetCapacity(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	requireControllerCap(t, c, csi.ControllerServiceCapability_RPC_GET_CAPACITY)
	// Without -capacity: the state dir's free space.
	resp, err := c.GetCapacity(ctx, &csi.GetCapacityRequest{VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
	if err != nil || resp.GetAvailableCapacity() <= 0 {
		t.Fatalf("free space = %v, %v", resp, err)
	}
	// With it: what the created volumes leave.
	c.capacity = 10 << 20
	if _, err := c.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 4 << 20}}); err != nil {
		t.Fatal(err)
	}
	resp, err = c.GetCapacity(ctx, &csi.GetCapacityRequest{VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
	if err != nil || resp.GetAvailableCapacity() != 6<<20 {
		t.Fatalf("capacity = %v, %v, want 6 MiB", resp, err)
	}
	// Block volumes are files in the same state dir.
	if resp, err := c.GetCapacity(ctx, &csi.GetCapacityRequest{VolumeCapabilities: []*csi.VolumeCapability{blockCap}}); err != nil || resp.GetAvailableCapacity() != 6<<20 {
		t.Errorf("block capacity = %v, %v, want 6 MiB", resp, err)
	}
}

// requireControllerCap fails the test unless the controller advertises rpc.
func requireControllerCap(t *testing.T, c *controller, rpc csi.ControllerServiceCapability_RPC_Type) {
	t.Helper()
	caps, err := c.ControllerGetCapabilities(context.Background(), &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range caps.GetCapabilities() {
		if cp.GetRpc().GetType() == rpc {
			return
		}
	}
	t.Errorf("capabilities %v lack %v", caps, rpc)
}
