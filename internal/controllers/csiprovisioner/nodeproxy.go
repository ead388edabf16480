package csiprovisioner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

// ControllerService calls a CSI driver's controller service on a node.
// Errors from the driver itself are gRPC status errors (status.FromError
// says ok); any other error means the call did not reach the driver there
// (driver not registered, no controller service, node unreachable), so
// another node may be tried.
type ControllerService interface {
	CreateVolume(ctx context.Context, node, driver string, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error)
	DeleteVolume(ctx context.Context, node, driver string, req *csipb.DeleteVolumeRequest) error
}

// statusCauseCSICode is the kubelet's Status cause carrying the driver's
// gRPC code (in Field) and message (internal/kubelet/csi).
const statusCauseCSICode = "CSIStatusCode"

// callTimeout bounds one call, a little over the kubelet's own bound.
const callTimeout = 150 * time.Second

// NodeProxy reaches the kubelets' /csi/{driver}/controller/{method}
// endpoints through the API server's nodes/proxy subresource.
type NodeProxy struct {
	// REST is the core/v1 REST client (CoreV1().RESTClient()).
	REST rest.Interface
}

// CreateVolume calls createVolume on the node's kubelet.
func (p NodeProxy) CreateVolume(ctx context.Context, node, driver string, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	resp := &csipb.CreateVolumeResponse{}
	return resp, p.call(ctx, node, driver, "createVolume", req, resp)
}

// DeleteVolume calls deleteVolume on the node's kubelet.
func (p NodeProxy) DeleteVolume(ctx context.Context, node, driver string, req *csipb.DeleteVolumeRequest) error {
	return p.call(ctx, node, driver, "deleteVolume", req, &csipb.DeleteVolumeResponse{})
}

// GetCapacity calls getCapacity on the node's kubelet, for the capacity
// tracking of internal/controllers/csicapacity.
func (p NodeProxy) GetCapacity(ctx context.Context, node, driver string, req *csipb.GetCapacityRequest) (*csipb.GetCapacityResponse, error) {
	resp := &csipb.GetCapacityResponse{}
	return resp, p.call(ctx, node, driver, "getCapacity", req, resp)
}

func (p NodeProxy) call(ctx context.Context, node, driver, method string, req, resp proto.Message) error {
	body, err := protojson.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	result := p.REST.Post().Resource("nodes").Name(node).SubResource("proxy").
		Suffix("csi", driver, "controller", method).
		SetHeader("Content-Type", "application/json").Body(body).Do(ctx)
	// Error, not Raw's error, decodes the kubelet's Status.
	if err := result.Error(); err != nil {
		return driverError(node, err)
	}
	raw, err := result.Raw()
	if err != nil {
		return driverError(node, err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("node %s: decoding %s response: %w", node, method, err)
	}
	return nil
}

// driverError turns a Status carrying the driver's gRPC status back into
// a gRPC status error; other errors stay routing errors.
func driverError(node string, err error) error {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		if d := se.Status().Details; d != nil {
			for _, c := range d.Causes {
				if string(c.Type) != statusCauseCSICode {
					continue
				}
				if n, perr := strconv.Atoi(c.Field); perr == nil {
					return status.Error(codes.Code(n), c.Message)
				}
			}
		}
	}
	return fmt.Errorf("node %s: %w", node, err)
}

// isDriverError says whether err is the driver's answer, not a failure to
// reach it.
func isDriverError(err error) bool {
	_, ok := status.FromError(err)
	return ok && err != nil
}
