package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// maxControllerBody bounds a controller request (parameters, secrets).
	maxControllerBody = 1 << 20
	// controllerTimeout bounds one controller call: creating a volume in
	// a storage backend may take a while, but not forever.
	controllerTimeout = 2 * time.Minute
)

// controllerMethods are the controller RPCs the kubelet API exposes, by
// their path segment: each decodes its request and calls the driver.
var controllerMethods = map[string]func(ctx context.Context, c csipb.ControllerClient, body []byte) (proto.Message, error){
	"createVolume": func(ctx context.Context, c csipb.ControllerClient, body []byte) (proto.Message, error) {
		req := &csipb.CreateVolumeRequest{}
		if err := unmarshalRequest(body, req); err != nil {
			return nil, err
		}
		return c.CreateVolume(ctx, req)
	},
	"deleteVolume": func(ctx context.Context, c csipb.ControllerClient, body []byte) (proto.Message, error) {
		req := &csipb.DeleteVolumeRequest{}
		if err := unmarshalRequest(body, req); err != nil {
			return nil, err
		}
		return c.DeleteVolume(ctx, req)
	},
	"getCapacity": func(ctx context.Context, c csipb.ControllerClient, body []byte) (proto.Message, error) {
		req := &csipb.GetCapacityRequest{}
		if err := unmarshalRequest(body, req); err != nil {
			return nil, err
		}
		return c.GetCapacity(ctx, req)
	},
}

// controllerMethodCaps are the controller capabilities a method needs
// beyond the controller service: the spec lets a driver leave optional
// RPCs unimplemented, and says so through ControllerGetCapabilities.
var controllerMethodCaps = map[string]csipb.ControllerServiceCapability_RPC_Type{
	"getCapacity": csipb.ControllerServiceCapability_RPC_GET_CAPACITY,
}

// errBadRequest marks a body that is not the request's JSON form.
var errBadRequest = errors.New("bad request")

func unmarshalRequest(body []byte, m proto.Message) error {
	if err := protojson.Unmarshal(body, m); err != nil {
		return fmt.Errorf("%w: %s is not valid JSON for it: %v", errBadRequest, m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// hasControllerService asks the driver's identity service, once, whether
// it offers CONTROLLER_SERVICE.
func (d *driver) hasControllerService(ctx context.Context) (bool, error) {
	d.capsMu.Lock()
	defer d.capsMu.Unlock()
	if d.pluginCaps == nil {
		resp, err := csipb.NewIdentityClient(d.conn).GetPluginCapabilities(ctx, &csipb.GetPluginCapabilitiesRequest{})
		if err != nil {
			return false, fmt.Errorf("GetPluginCapabilities: %w", err)
		}
		d.pluginCaps = map[csipb.PluginCapability_Service_Type]bool{}
		for _, c := range resp.GetCapabilities() {
			d.pluginCaps[c.GetService().GetType()] = true
		}
	}
	return d.pluginCaps[csipb.PluginCapability_Service_CONTROLLER_SERVICE], nil
}

// hasControllerCapability asks the driver's controller service, once,
// for its capabilities and says whether c is among them.
func (d *driver) hasControllerCapability(ctx context.Context, c csipb.ControllerServiceCapability_RPC_Type) (bool, error) {
	d.capsMu.Lock()
	defer d.capsMu.Unlock()
	if d.controllerCaps == nil {
		resp, err := csipb.NewControllerClient(d.conn).ControllerGetCapabilities(ctx, &csipb.ControllerGetCapabilitiesRequest{})
		if err != nil {
			return false, fmt.Errorf("ControllerGetCapabilities: %w", err)
		}
		d.controllerCaps = map[csipb.ControllerServiceCapability_RPC_Type]bool{}
		for _, c := range resp.GetCapabilities() {
			d.controllerCaps[c.GetRpc().GetType()] = true
		}
	}
	return d.controllerCaps[c], nil
}

// ServeController serves POST /csi/{driver}/controller/{method}: the
// body is the protojson form of the CSI request (createVolume,
// deleteVolume, getCapacity), passed to the driver's controller service
// through its socket; the answer is the response's protojson, or a Status
// whose code follows the gRPC status. Drivers not registered on this
// node, without a controller service, or without the capability the
// method needs (GET_CAPACITY) are 404s.
func (m *Manager) ServeController(w http.ResponseWriter, r *http.Request) {
	name, method := r.PathValue("driver"), r.PathValue("method")
	call, ok := controllerMethods[method]
	if !ok {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("unknown CSI controller method %q", method))
		return
	}
	d, err := m.drivers.get(name)
	if err != nil {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), controllerTimeout)
	defer cancel()
	ok, err = d.hasControllerService(ctx)
	if err != nil {
		writeStatus(w, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, fmt.Sprintf("CSI driver %s: %v", name, err))
		return
	}
	if !ok {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("CSI driver %s on node %s has no controller service", name, m.cfg.NodeName))
		return
	}
	if c, needs := controllerMethodCaps[method]; needs {
		ok, err := d.hasControllerCapability(ctx, c)
		if err != nil {
			writeStatus(w, http.StatusBadGateway, metav1.StatusReasonServiceUnavailable, fmt.Sprintf("CSI driver %s: %v", name, err))
			return
		}
		if !ok {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
				fmt.Sprintf("CSI driver %s on node %s does not offer the %s controller capability", name, m.cfg.NodeName, c))
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControllerBody))
	if err != nil {
		writeStatus(w, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, err.Error())
		return
	}
	resp, err := call(ctx, csipb.NewControllerClient(d.conn), body)
	if errors.Is(err, errBadRequest) {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	if err != nil {
		writeDriverError(w, name, method, status.Convert(err))
		return
	}
	out, err := protojson.Marshal(resp)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// StatusCauseCSICode is the Status cause type that carries the driver's
// own gRPC status: the code's number in Field, its message in Message.
// Errors without it come from the way to the driver (unknown driver, no
// controller service, node unreachable), not from the driver.
const StatusCauseCSICode metav1.CauseType = "CSIStatusCode"

// writeDriverError answers with the driver's gRPC status as a Status.
func writeDriverError(w http.ResponseWriter, driver, method string, st *status.Status) {
	code, reason := httpStatus(st.Code())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Reason: reason, Code: int32(code),
		Message: fmt.Sprintf("CSI driver %s: %s: code = %s desc = %s", driver, method, st.Code(), st.Message()),
		Details: &metav1.StatusDetails{Name: driver, Causes: []metav1.StatusCause{{
			Type: StatusCauseCSICode, Field: strconv.Itoa(int(st.Code())), Message: st.Message(),
		}}},
	})
}

// httpStatus maps a gRPC code to the HTTP status (and Status reason) a
// client of the kubelet API sees, as grpc-gateway maps them.
func httpStatus(c codes.Code) (int, metav1.StatusReason) {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest, metav1.StatusReasonBadRequest
	case codes.NotFound:
		return http.StatusNotFound, metav1.StatusReasonNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict, metav1.StatusReasonConflict
	case codes.PermissionDenied:
		return http.StatusForbidden, metav1.StatusReasonForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized, metav1.StatusReasonUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented, metav1.StatusReasonMethodNotAllowed
	case codes.Unavailable:
		return http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable
	case codes.DeadlineExceeded, codes.Canceled:
		return http.StatusGatewayTimeout, metav1.StatusReasonTimeout
	}
	return http.StatusInternalServerError, metav1.StatusReasonInternalError
}

// writeStatus answers with a Kubernetes Status, which the API server's
// node proxy passes through to the caller.
func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}
