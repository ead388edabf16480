package csi

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	csitest "github.com/kubernetes-csi/csi-test/v5/driver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeControllerDriver is a driver with node, identity and (optionally)
// controller services.
type fakeControllerDriver struct {
	fakeNodeService
	csipb.UnimplementedControllerServer

	controller bool // announces CONTROLLER_SERVICE
	capacity   bool // announces GET_CAPACITY
	createErr  error

	mu         sync.Mutex
	creates    []*csipb.CreateVolumeRequest
	deletes    []*csipb.DeleteVolumeRequest
	capacities []*csipb.GetCapacityRequest
}

func (f *fakeControllerDriver) GetPluginCapabilities(context.Context, *csipb.GetPluginCapabilitiesRequest) (*csipb.GetPluginCapabilitiesResponse, error) {
	resp := &csipb.GetPluginCapabilitiesResponse{}
	if f.controller {
		resp.Capabilities = append(resp.Capabilities, &csipb.PluginCapability{Type: &csipb.PluginCapability_Service_{
			Service: &csipb.PluginCapability_Service{Type: csipb.PluginCapability_Service_CONTROLLER_SERVICE},
		}})
	}
	return resp, nil
}

func (f *fakeControllerDriver) CreateVolume(_ context.Context, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, proto.Clone(req).(*csipb.CreateVolumeRequest))
	if f.createErr != nil {
		return nil, f.createErr
	}
	return &csipb.CreateVolumeResponse{Volume: &csipb.Volume{
		VolumeId:      "vol-" + req.Name,
		CapacityBytes: req.GetCapacityRange().GetRequiredBytes(),
		VolumeContext: map[string]string{"k": "v"},
	}}, nil
}

func (f *fakeControllerDriver) DeleteVolume(_ context.Context, req *csipb.DeleteVolumeRequest) (*csipb.DeleteVolumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, proto.Clone(req).(*csipb.DeleteVolumeRequest))
	return &csipb.DeleteVolumeResponse{}, nil
}

func (f *fakeControllerDriver) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	rpcs := []csipb.ControllerServiceCapability_RPC_Type{csipb.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME}
	if f.capacity {
		rpcs = append(rpcs, csipb.ControllerServiceCapability_RPC_GET_CAPACITY)
	}
	resp := &csipb.ControllerGetCapabilitiesResponse{}
	for _, r := range rpcs {
		resp.Capabilities = append(resp.Capabilities, &csipb.ControllerServiceCapability{
			Type: &csipb.ControllerServiceCapability_Rpc{Rpc: &csipb.ControllerServiceCapability_RPC{Type: r}}})
	}
	return resp, nil
}

// GetCapacity answers 5 GiB in zone a, 1 GiB elsewhere, volumes of at
// most 1 GiB.
func (f *fakeControllerDriver) GetCapacity(_ context.Context, req *csipb.GetCapacityRequest) (*csipb.GetCapacityResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.capacities = append(f.capacities, proto.Clone(req).(*csipb.GetCapacityRequest))
	avail := int64(1 << 30)
	if req.GetAccessibleTopology().GetSegments()["zone"] == "a" {
		avail = 5 << 30
	}
	return &csipb.GetCapacityResponse{AvailableCapacity: avail, MaximumVolumeSize: wrapperspb.Int64(1 << 30)}, nil
}

// controllerServer registers f and serves the manager's controller
// endpoint as the kubelet's mux routes it.
func controllerServer(t *testing.T, f *fakeControllerDriver) *httptest.Server {
	t.Helper()
	m := New(Config{NodeName: testNode, DataDir: shortTempDir(t)})
	t.Cleanup(m.drivers.closeAll)
	sock := startDriverServers(t, f, f, f)
	d, err := dialDriver(testDriver, sock, sock)
	if err != nil {
		t.Fatal(err)
	}
	m.drivers.add(d)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /csi/{driver}/controller/{method}", m.ServeController)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// startDriverServers serves a driver's identity, node and controller
// services on a unix socket and returns its path.
func startDriverServers(t *testing.T, id csipb.IdentityServer, node csipb.NodeServer, ctrl csipb.ControllerServer) string {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "csi.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := csitest.NewCSIDriver(&csitest.CSIDriverServers{Identity: id, Node: node, Controller: ctrl})
	if err := d.Start(l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return sock
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestControllerEndpointCreatesAndDeletesVolumes(t *testing.T) {
	f := &fakeControllerDriver{controller: true}
	srv := controllerServer(t, f)
	req := &csipb.CreateVolumeRequest{
		Name:          "pvc-123",
		CapacityRange: &csipb.CapacityRange{RequiredBytes: 1 << 30},
		Parameters:    map[string]string{"type": "fast"},
		Secrets:       map[string]string{"password": "s3cret"},
	}
	body, _ := protojson.Marshal(req)
	code, out := post(t, srv.URL+"/csi/"+testDriver+"/controller/createVolume", string(body))
	if code != http.StatusOK {
		t.Fatalf("createVolume = %d %s", code, out)
	}
	resp := &csipb.CreateVolumeResponse{}
	if err := protojson.Unmarshal(out, resp); err != nil {
		t.Fatal(err)
	}
	if resp.Volume.VolumeId != "vol-pvc-123" || resp.Volume.CapacityBytes != 1<<30 || resp.Volume.VolumeContext["k"] != "v" {
		t.Errorf("response = %v", resp)
	}
	if len(f.creates) != 1 || !proto.Equal(f.creates[0], req) {
		t.Errorf("driver got %v, want %v", f.creates, req)
	}

	code, out = post(t, srv.URL+"/csi/"+testDriver+"/controller/deleteVolume", `{"volumeId":"vol-pvc-123"}`)
	if code != http.StatusOK || len(f.deletes) != 1 || f.deletes[0].VolumeId != "vol-pvc-123" {
		t.Errorf("deleteVolume = %d %s, driver got %v", code, out, f.deletes)
	}
}

func TestControllerEndpointErrors(t *testing.T) {
	f := &fakeControllerDriver{controller: true, createErr: status.Error(codes.ResourceExhausted, "pool is full")}
	srv := controllerServer(t, f)
	statusOf := func(out []byte) metav1.Status {
		var s metav1.Status
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("not a Status: %s", out)
		}
		return s
	}

	code, out := post(t, srv.URL+"/csi/"+testDriver+"/controller/createVolume", `{"name":"pvc-1"}`)
	if s := statusOf(out); code != http.StatusTooManyRequests || !strings.Contains(s.Message, "ResourceExhausted") ||
		!strings.Contains(s.Message, "pool is full") {
		t.Errorf("driver error = %d %+v, want 429 naming the gRPC code and message", code, s)
	} else if d := s.Details; d == nil || len(d.Causes) != 1 || d.Causes[0].Type != StatusCauseCSICode ||
		d.Causes[0].Field != "8" || d.Causes[0].Message != "pool is full" {
		t.Errorf("details = %+v, want the driver's code and message", d)
	}
	code, out = post(t, srv.URL+"/csi/"+testDriver+"/controller/createVolume", `{"nosuchfield":1}`)
	if code != http.StatusBadRequest {
		t.Errorf("bad body = %d %s, want 400", code, out)
	}
	code, out = post(t, srv.URL+"/csi/other.example.com/controller/createVolume", `{}`)
	if s := statusOf(out); code != http.StatusNotFound || !strings.Contains(s.Message, "not found in the list of registered CSI drivers") {
		t.Errorf("unknown driver = %d %+v, want 404", code, s)
	}
	code, _ = post(t, srv.URL+"/csi/"+testDriver+"/controller/listVolumes", `{}`)
	if code != http.StatusNotFound {
		t.Errorf("unknown method = %d, want 404", code)
	}
}

func TestControllerEndpointRefusesNodeOnlyDrivers(t *testing.T) {
	f := &fakeControllerDriver{}
	srv := controllerServer(t, f)
	code, out := post(t, srv.URL+"/csi/"+testDriver+"/controller/createVolume", `{"name":"pvc-1"}`)
	if code != http.StatusNotFound || !strings.Contains(string(out), "has no controller service") {
		t.Errorf("node-only driver = %d %s, want 404", code, out)
	}
	if len(f.creates) != 0 {
		t.Errorf("driver was called: %v", f.creates)
	}
}

func TestControllerEndpointGetsCapacity(t *testing.T) {
	f := &fakeControllerDriver{controller: true, capacity: true}
	srv := controllerServer(t, f)
	req := &csipb.GetCapacityRequest{
		AccessibleTopology: &csipb.Topology{Segments: map[string]string{"zone": "a"}},
		Parameters:         map[string]string{"type": "fast"},
		VolumeCapabilities: []*csipb.VolumeCapability{{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_UNKNOWN},
		}},
	}
	body, _ := protojson.Marshal(req)
	code, out := post(t, srv.URL+"/csi/"+testDriver+"/controller/getCapacity", string(body))
	if code != http.StatusOK {
		t.Fatalf("getCapacity = %d %s", code, out)
	}
	resp := &csipb.GetCapacityResponse{}
	if err := protojson.Unmarshal(out, resp); err != nil {
		t.Fatal(err)
	}
	if resp.AvailableCapacity != 5<<30 || resp.GetMaximumVolumeSize().GetValue() != 1<<30 {
		t.Errorf("response = %v", resp)
	}
	if len(f.capacities) != 1 || !proto.Equal(f.capacities[0], req) {
		t.Errorf("driver got %v, want %v", f.capacities, req)
	}
}

func TestControllerEndpointRefusesGetCapacityWithoutTheCapability(t *testing.T) {
	f := &fakeControllerDriver{controller: true}
	srv := controllerServer(t, f)
	code, out := post(t, srv.URL+"/csi/"+testDriver+"/controller/getCapacity", `{}`)
	if code != http.StatusNotFound || !strings.Contains(string(out), "does not offer the GET_CAPACITY controller capability") {
		t.Errorf("getCapacity without GET_CAPACITY = %d %s, want 404", code, out)
	}
	if len(f.capacities) != 0 {
		t.Errorf("driver was called: %v", f.capacities)
	}
	// Creating volumes needs no more than the controller service.
	code, out = post(t, srv.URL+"/csi/"+testDriver+"/controller/createVolume", `{"name":"pvc-1"}`)
	if code != http.StatusOK {
		t.Errorf("createVolume = %d %s", code, out)
	}
}
