package csi

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	csitest "github.com/kubernetes-csi/csi-test/v5/driver"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const (
	testNode   = "node-a"
	testDriver = "hostpath.csi.example.com"
)

// fakeNodeService is a CSI driver's identity and node services that
// record the calls they get; publish and stage create their target (a
// file for a Block publish).
type fakeNodeService struct {
	csipb.UnimplementedIdentityServer
	csipb.UnimplementedNodeServer

	stages     bool
	mountGroup bool // advertises VOLUME_MOUNT_GROUP
	// onPublish, when set, runs after the target is created, as if it
	// were the volume's contents.
	onPublish func(target string) error

	mu    sync.Mutex
	calls []proto.Message
}

func (f *fakeNodeService) record(req proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, proto.Clone(req))
}

// callsOf returns the recorded requests of one type.
func callsOf[T proto.Message](f *fakeNodeService) []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []T
	for _, c := range f.calls {
		if r, ok := c.(T); ok {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeNodeService) GetPluginInfo(context.Context, *csipb.GetPluginInfoRequest) (*csipb.GetPluginInfoResponse, error) {
	return &csipb.GetPluginInfoResponse{Name: testDriver, VendorVersion: "1.0.0"}, nil
}

func (f *fakeNodeService) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	return &csipb.NodeGetInfoResponse{
		NodeId:             "id-" + testNode,
		MaxVolumesPerNode:  7,
		AccessibleTopology: &csipb.Topology{Segments: map[string]string{"topology.example.com/zone": "z1"}},
	}, nil
}

func (f *fakeNodeService) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	resp := &csipb.NodeGetCapabilitiesResponse{}
	if f.stages {
		resp.Capabilities = append(resp.Capabilities, &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{
			Rpc: &csipb.NodeServiceCapability_RPC{Type: csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME},
		}})
	}
	if f.mountGroup {
		resp.Capabilities = append(resp.Capabilities, &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{
			Rpc: &csipb.NodeServiceCapability_RPC{Type: csipb.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP},
		}})
	}
	return resp, nil
}

func (f *fakeNodeService) NodeStageVolume(_ context.Context, req *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
	f.record(req)
	return &csipb.NodeStageVolumeResponse{}, os.MkdirAll(req.StagingTargetPath, 0o750)
}

func (f *fakeNodeService) NodeUnstageVolume(_ context.Context, req *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
	f.record(req)
	return &csipb.NodeUnstageVolumeResponse{}, nil
}

func (f *fakeNodeService) NodePublishVolume(_ context.Context, req *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	f.record(req)
	if req.VolumeCapability.GetBlock() != nil {
		// A file in the directory the kubelet made, as the spec asks.
		return &csipb.NodePublishVolumeResponse{}, os.WriteFile(req.TargetPath, nil, 0o600)
	}
	if err := os.MkdirAll(req.TargetPath, 0o750); err != nil {
		return nil, err
	}
	if f.onPublish != nil {
		if err := f.onPublish(req.TargetPath); err != nil {
			return nil, err
		}
	}
	return &csipb.NodePublishVolumeResponse{}, nil
}

func (f *fakeNodeService) NodeUnpublishVolume(_ context.Context, req *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	f.record(req)
	return &csipb.NodeUnpublishVolumeResponse{}, os.RemoveAll(req.TargetPath)
}

// startDriver serves the fake driver with csi-test's in-process CSI
// server on a unix socket and returns the socket path.
func startDriver(t *testing.T, f *fakeNodeService) string {
	t.Helper()
	sock := filepath.Join(shortTempDir(t), "csi.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	d := csitest.NewCSIDriver(&csitest.CSIDriverServers{Identity: f, Node: f})
	if err := d.Start(l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return sock
}

// fakeRegistrar is a plugin's registration service (what
// node-driver-registrar serves in plugins_registry).
type fakeRegistrar struct {
	registerapi.UnimplementedRegistrationServer
	info   *registerapi.PluginInfo
	status chan *registerapi.RegistrationStatus
	server *grpc.Server
	socket string
}

func (r *fakeRegistrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return r.info, nil
}

func (r *fakeRegistrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	r.status <- s
	return &registerapi.RegistrationStatusResponse{}, nil
}

func csiPluginInfo(endpoint string) *registerapi.PluginInfo {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: testDriver, Endpoint: endpoint, SupportedVersions: []string{"1.0.0"}}
}

// startRegistrar puts a registration socket answering info into dir.
func startRegistrar(t *testing.T, dir string, info *registerapi.PluginInfo) *fakeRegistrar {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	r := &fakeRegistrar{
		info:   info,
		status: make(chan *registerapi.RegistrationStatus, 4),
		server: grpc.NewServer(),
		socket: filepath.Join(dir, strings.ReplaceAll(info.Name, "/", "_")+"-reg.sock"),
	}
	l, err := net.Listen("unix", r.socket)
	if err != nil {
		t.Fatal(err)
	}
	registerapi.RegisterRegistrationServer(r.server, r)
	go r.server.Serve(l)
	t.Cleanup(r.stop)
	return r
}

// stop ends the registration server and removes its socket, as a driver
// pod going away does.
func (r *fakeRegistrar) stop() {
	r.server.Stop()
	os.Remove(r.socket)
}

// shortTempDir keeps unix socket paths under the 108-byte limit.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type testEnv struct {
	m      *Manager
	client *fake.Clientset
	node   *fakeNodeService
	reg    *fakeRegistrar
}

// newRegisteredEnv starts a fake driver, registers it through
// plugins_registry and returns the manager and its fakes.
func newRegisteredEnv(t *testing.T, stages bool) *testEnv {
	t.Helper()
	return newEnvWithDriver(t, &fakeNodeService{stages: stages})
}

// newEnvWithDriver is newRegisteredEnv for a driver configured by the
// test; its fields must not change once it serves.
func newEnvWithDriver(t *testing.T, node *fakeNodeService) *testEnv {
	t.Helper()
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: "node-uid"}})
	dataDir := shortTempDir(t)
	m := New(Config{Client: client, NodeName: testNode, DataDir: dataDir, PodsDir: filepath.Join(dataDir, "pods")})
	t.Cleanup(m.drivers.closeAll)
	reg := startRegistrar(t, m.RegistryDir(), csiPluginInfo(startDriver(t, node)))
	m.watcher.sync(t.Context())
	if s := <-reg.status; !s.PluginRegistered {
		t.Fatalf("registration failed: %s", s.Error)
	}
	return &testEnv{m: m, client: client, node: node, reg: reg}
}
