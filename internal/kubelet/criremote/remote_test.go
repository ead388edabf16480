package criremote

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// server answers a few CRI calls the way containerd would.
type server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer
	lastFilter *runtimeapi.PodSandboxFilter
}

func (s *server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "containerd", RuntimeVersion: "1.6.20"}, nil
}

func (s *server) ListPodSandbox(_ context.Context, r *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	s.lastFilter = r.Filter
	return &runtimeapi.ListPodSandboxResponse{Items: []*runtimeapi.PodSandbox{{Id: "sb1"}}}, nil
}

func (s *server) RunPodSandbox(context.Context, *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb2"}, nil
}

func (s *server) ExecSync(_ context.Context, r *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if r.Cmd[0] == "false" {
		return &runtimeapi.ExecSyncResponse{Stderr: []byte("bad"), ExitCode: 3}, nil
	}
	return &runtimeapi.ExecSyncResponse{Stdout: []byte("ok")}, nil
}

func (s *server) ImageStatus(_ context.Context, r *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: "sha256:" + r.Image.Image}}, nil
}

func TestClientOverGRPC(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	impl := &server{}
	runtimeapi.RegisterRuntimeServiceServer(srv, impl)
	runtimeapi.RegisterImageServiceServer(srv, impl)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	c, err := Dial("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if v, err := c.Version(ctx, ""); err != nil || v.RuntimeName != "containerd" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	sel := &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"a": "b"}}
	if items, err := c.ListPodSandbox(ctx, sel); err != nil || len(items) != 1 || impl.lastFilter.LabelSelector["a"] != "b" {
		t.Fatalf("ListPodSandbox = %v, %v (filter %v)", items, err, impl.lastFilter)
	}
	if id, err := c.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{}, ""); err != nil || id != "sb2" {
		t.Fatalf("RunPodSandbox = %q, %v", id, err)
	}
	if out, _, err := c.ExecSync(ctx, "c1", []string{"true"}, time.Second); err != nil || string(out) != "ok" {
		t.Fatalf("ExecSync = %q, %v", out, err)
	}
	_, stderr, err := c.ExecSync(ctx, "c1", []string{"false"}, 0)
	if ExitCode(err) != 3 || string(stderr) != "bad" {
		t.Fatalf("failing ExecSync: %q, %v", stderr, err)
	}
	if img, err := c.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, false); err != nil || img.Image.Id != "sha256:busybox" {
		t.Fatalf("ImageStatus = %v, %v", img, err)
	}
	// Calls containerd does not implement fail with its error.
	if _, err := c.ListContainers(ctx, nil); err == nil {
		t.Error("unimplemented call succeeded")
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int32
	}{{nil, 0}, {&ExitError{Code: 7}, 7}, {errors.New("dial failed"), -1}} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if (&ExitError{Code: 2}).Error() != "command exited with code 2" {
		t.Error("ExitError message")
	}
}
