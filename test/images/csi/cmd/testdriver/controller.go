package main

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// publishContextKey carries the node a volume was attached to from
// ControllerPublishVolume, through the VolumeAttachment's status, to the
// node calls, which refuse a volume not attached to their node.
const publishContextKey = "csi.skiff.test/attached-to"

// controller is the CSI Controller service.
type controller struct {
	csi.UnimplementedControllerServer
	state *state
	// capacity is the storage GetCapacity hands out (less the volumes
	// created); 0 reports the free space of the state dir instead.
	capacity int64
}

func (c *controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{
		controllerCapability(csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME),
		controllerCapability(csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME),
		controllerCapability(csi.ControllerServiceCapability_RPC_GET_CAPACITY),
		controllerCapability(csi.ControllerServiceCapability_RPC_CLONE_VOLUME),
	}}, nil
}

func controllerCapability(t csi.ControllerServiceCapability_RPC_Type) *csi.ControllerServiceCapability {
	return &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}}
}

// defaultCapacity is the size of a volume whose request names none.
const defaultCapacity = 1 << 30

// CreateVolume makes the volume's directory, a copy of the source
// volume's for a clone (clone.go); the volume ID is the
// requested name, so a retried call finds the same volume. Directories
// have no size: the capacity is recorded, so that a second request of the
// same name with an incompatible range fails as the spec asks.
func (c *controller) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	id := req.GetName()
	if err := checkID(id); err != nil {
		return nil, err
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no volume capabilities")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()...); err != nil {
		return nil, err
	}
	want, err := capacityFor(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	size, found, err := c.state.capacity(id)
	if err != nil {
		return nil, err
	}
	var src string
	if !found {
		if src, err = c.state.checkCloneSource(req, want); err != nil {
			return nil, err
		}
	}
	switch {
	case !found && src != "":
		if err := c.state.cloneVolume(src, id); err != nil {
			return nil, err
		}
		if err := c.state.setCapacity(id, want); err != nil {
			return nil, err
		}
		size = want
	case !found:
		if err := os.MkdirAll(c.state.volumeDir(id), 0o777); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if err := c.state.setCapacity(id, want); err != nil {
			return nil, err
		}
		size = want
	case size == 0:
		size = want // made by hand: no size to disagree with
	case !inRange(size, req.GetCapacityRange()):
		return nil, status.Errorf(codes.AlreadyExists, "volume %q exists with %d bytes, outside the requested range", id, size)
	}
	vol := &csi.Volume{VolumeId: id, CapacityBytes: size, ContentSource: req.GetVolumeContentSource()}
	// Accessible from the first node the scheduler preferred (or, without
	// preferences, the first it requires), when the CO gave topology; the
	// directory exists on that node only in spirit.
	ar := req.GetAccessibilityRequirements()
	if pref := ar.GetPreferred(); len(pref) > 0 {
		vol.AccessibleTopology = pref[:1]
	} else if reqd := ar.GetRequisite(); len(reqd) > 0 {
		vol.AccessibleTopology = reqd[:1]
	}
	return &csi.CreateVolumeResponse{Volume: vol}, nil
}

// capacityFor is the size a new volume gets: the required bytes, else the
// limit, else defaultCapacity.
func capacityFor(r *csi.CapacityRange) (int64, error) {
	required, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	switch {
	case required < 0 || limit < 0:
		return 0, status.Error(codes.InvalidArgument, "negative capacity range")
	case limit > 0 && required > limit:
		return 0, status.Errorf(codes.OutOfRange, "required bytes %d exceed the limit %d", required, limit)
	case required > 0:
		return required, nil
	case limit > 0:
		return min(limit, defaultCapacity), nil
	}
	return defaultCapacity, nil
}

func inRange(size int64, r *csi.CapacityRange) bool {
	return size >= r.GetRequiredBytes() && (r.GetLimitBytes() == 0 || size <= r.GetLimitBytes())
}

// DeleteVolume removes the directory and its data; an unknown volume is
// already deleted.
func (c *controller) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := checkID(id); err != nil {
		return nil, err
	}
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	if node, err := c.state.attachedTo(id); err != nil {
		return nil, err
	} else if node != "" {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is still attached to node %q", id, node)
	}
	if err := os.RemoveAll(c.state.volumeDir(id)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, f := range []string{c.state.capacityFile(id), c.state.blockFile(id)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// GetCapacity reports the storage of this driver instance's state dir,
// whatever segment is asked for: the topology segment is the node, and
// the CO asks through a node of the segment. With -capacity it is that
// less the sizes of the volumes created, so a test sees it shrink;
// without, the free space of the state dir's filesystem. Block volumes
// (backing files in the state dir) have the same.
func (c *controller) GetCapacity(_ context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if checkCapabilities(req.GetVolumeCapabilities()...) != nil {
		return &csi.GetCapacityResponse{}, nil
	}
	if c.capacity <= 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(c.state.dir, &st); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		return &csi.GetCapacityResponse{AvailableCapacity: int64(st.Bavail) * int64(st.Bsize)}, nil
	}
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	used, err := c.state.allocated()
	if err != nil {
		return nil, err
	}
	return &csi.GetCapacityResponse{AvailableCapacity: max(c.capacity-used, 0)}, nil
}

// ControllerPublishVolume "attaches" the volume to a node: it records the
// node and hands the node calls a publish context naming it.
func (c *controller) ControllerPublishVolume(_ context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	id, node := req.GetVolumeId(), req.GetNodeId()
	if node == "" {
		return nil, status.Error(codes.InvalidArgument, "no node ID")
	}
	if err := checkCapabilities(req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	if err := c.state.volumeExists(id); err != nil {
		return nil, err
	}
	cur, err := c.state.attachedTo(id)
	if err != nil {
		return nil, err
	}
	switch cur {
	case node: // already attached: the call is idempotent
	case "":
		if err := os.WriteFile(c.state.attachmentFile(id), []byte(node), 0o644); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is attached to node %q", id, cur)
	}
	return &csi.ControllerPublishVolumeResponse{PublishContext: map[string]string{publishContextKey: node}}, nil
}

// ControllerUnpublishVolume drops the attachment record; detaching what is
// not attached (or no longer exists) succeeds.
func (c *controller) ControllerUnpublishVolume(_ context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := checkID(id); err != nil {
		return nil, err
	}
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	cur, err := c.state.attachedTo(id)
	if err != nil {
		return nil, err
	}
	if cur != "" && (req.GetNodeId() == "" || req.GetNodeId() == cur) {
		if err := os.Remove(c.state.attachmentFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

func (c *controller) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	if err := c.state.volumeExists(req.GetVolumeId()); err != nil {
		return nil, err
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()...); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

// checkCapabilities refuses capabilities of neither access type: a volume
// is a directory to mount or (block.go) a loop device.
func checkCapabilities(caps ...*csi.VolumeCapability) error {
	for _, c := range caps {
		if c == nil {
			return status.Error(codes.InvalidArgument, "no volume capability")
		}
		if c.GetBlock() == nil && c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "volume capability has no access type")
		}
	}
	return nil
}
