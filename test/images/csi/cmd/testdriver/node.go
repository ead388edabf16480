package main

import (
	"context"
	"errors"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// node is the CSI Node service. Staging bind-mounts the volume directory
// at the staging path (once per node); publishing bind-mounts the staging
// path at each pod's target path. Block volumes are loop devices
// (block.go).
type node struct {
	csi.UnimplementedNodeServer
	state   *state
	nodeID  string
	devices *blockDevices
}

func (n *node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{{
		Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME}},
	}}}, nil
}

func (n *node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	if n.nodeID == "" {
		return nil, status.Error(codes.FailedPrecondition, "the driver was started without a node ID")
	}
	return &csi.NodeGetInfoResponse{
		NodeId:             n.nodeID,
		AccessibleTopology: &csi.Topology{Segments: map[string]string{topologyKey: n.nodeID}},
	}, nil
}

// NodeStageVolume checks the volume was attached to this node (the publish
// context the kubelet copied from the VolumeAttachment) and mounts it at
// the staging path, or attaches a Block volume's loop device.
func (n *node) NodeStageVolume(_ context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if staging == "" {
		return nil, status.Error(codes.InvalidArgument, "no staging target path")
	}
	if err := checkCapabilities(req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	if got := req.GetPublishContext()[publishContextKey]; got != n.nodeID {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is not published to node %q (publish context names %q)", id, n.nodeID, got)
	}
	n.state.mu.Lock()
	defer n.state.mu.Unlock()
	if err := n.state.volumeExists(id); err != nil {
		return nil, err
	}
	if req.GetVolumeCapability().GetBlock() != nil {
		if err := n.stageBlock(id); err != nil {
			return nil, err
		}
		return &csi.NodeStageVolumeResponse{}, nil
	}
	if err := bindMount(n.state.volumeDir(id), staging, false); err != nil {
		return nil, status.Errorf(codes.Internal, "stage %q: %v", id, err)
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (n *node) NodeUnstageVolume(_ context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if err := checkID(req.GetVolumeId()); err != nil {
		return nil, err
	}
	staging := req.GetStagingTargetPath()
	if staging == "" {
		return nil, status.Error(codes.InvalidArgument, "no staging target path")
	}
	n.state.mu.Lock()
	defer n.state.mu.Unlock()
	if err := unmount(staging); err != nil {
		return nil, status.Errorf(codes.Internal, "unstage %q: %v", req.GetVolumeId(), err)
	}
	// A Block volume's loop device, if it has one.
	if err := n.devices.detach(n.state.blockFile(req.GetVolumeId())); err != nil {
		return nil, status.Errorf(codes.Internal, "unstage %q: %v", req.GetVolumeId(), err)
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// NodePublishVolume mounts the staged volume at the pod's target path,
// read-only when asked; a Block volume's device is bind-mounted onto the
// target file.
func (n *node) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, staging, target := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetTargetPath()
	if err := checkID(id); err != nil {
		return nil, err
	}
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "no target path")
	}
	if staging == "" {
		return nil, status.Error(codes.FailedPrecondition, "no staging path: the driver stages every volume")
	}
	if err := checkCapabilities(req.GetVolumeCapability()); err != nil {
		return nil, err
	}
	n.state.mu.Lock()
	defer n.state.mu.Unlock()
	if req.GetVolumeCapability().GetBlock() != nil {
		if err := n.publishBlock(id, target, req.GetReadonly()); err != nil {
			return nil, err
		}
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if mounted, err := isMountPoint(staging); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	} else if !mounted {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q is not staged at %s", id, staging)
	}
	if err := bindMount(staging, target, req.GetReadonly()); err != nil {
		return nil, status.Errorf(codes.Internal, "publish %q: %v", id, err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume unmounts the target path and removes it, as the
// spec asks of the plugin that created it.
func (n *node) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if err := checkID(req.GetVolumeId()); err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "no target path")
	}
	n.state.mu.Lock()
	defer n.state.mu.Unlock()
	if err := unmount(target); err != nil {
		return nil, status.Errorf(codes.Internal, "unpublish %q: %v", req.GetVolumeId(), err)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "unpublish %q: %v", req.GetVolumeId(), err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}
