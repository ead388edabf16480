// Command registrar stands in for upstream's node-driver-registrar in
// Skiff's end-to-end tests: it tells the kubelet where a CSI driver's
// socket is, through the kubelet's plugin registration API
// (k8s.io/kubelet pluginregistration/v1).
//
// It asks the driver for its name (GetPluginInfo on -csi-address, the
// socket as this container sees it), then serves the Registration service
// on <registration-dir>/<driver>-reg.sock, where the kubelet watching
// <DataDir>/plugins_registry finds it. GetInfo answers with
// -kubelet-registration-path: the same driver socket as the kubelet sees
// it on the host. A registration the kubelet refuses ends the process, so
// the pod's restart retries it, as upstream's registrar does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	csiAddress := flag.String("csi-address", "/csi/csi.sock", "the driver's CSI socket, as this container sees it")
	kubeletPath := flag.String("kubelet-registration-path", "", "the driver's CSI socket, as the kubelet sees it on the host")
	regDir := flag.String("registration-dir", "/registration", "the kubelet's plugins_registry directory, as this container sees it")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log, *csiAddress, *kubeletPath, *regDir); err != nil {
		log.Error("registrar failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, csiAddress, kubeletPath, regDir string) error {
	if kubeletPath == "" {
		return errors.New("-kubelet-registration-path is required")
	}
	name, err := driverName(ctx, log, csiAddress)
	if err != nil {
		return err
	}
	socket := filepath.Join(regDir, name+"-reg.sock")
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	// The kubelet deregisters the driver when the socket goes away.
	defer os.Remove(socket)

	reg := &registration{name: name, endpoint: kubeletPath, log: log, refused: make(chan string, 1)}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, reg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("serving plugin registration", "driver", name, "socket", socket, "endpoint", kubeletPath)

	select {
	case <-ctx.Done():
		srv.GracefulStop()
		return nil
	case msg := <-reg.refused:
		srv.Stop()
		return fmt.Errorf("the kubelet refused the registration of %s: %s", name, msg)
	case err := <-served:
		return err
	}
}

// driverName waits for the driver's socket to answer GetPluginInfo; the
// driver container may start after this one.
func driverName(ctx context.Context, log *slog.Logger, address string) (string, error) {
	conn, err := grpc.NewClient("unix://"+strings.TrimPrefix(address, "unix://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	identity := csi.NewIdentityClient(conn)
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := identity.GetPluginInfo(callCtx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			return info.GetName(), nil
		}
		log.Info("waiting for the CSI driver", "address", address, "err", err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// registration is the pluginregistration.v1 Registration service.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	name, endpoint string
	log            *slog.Logger
	refused        chan string // the kubelet's error, once
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	r.log.Info("kubelet asked for plugin info")
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.name,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.GetPluginRegistered() {
		r.log.Info("registered with the kubelet", "driver", r.name)
		return &registerapi.RegistrationStatusResponse{}, nil
	}
	r.log.Error("the kubelet refused the registration", "driver", r.name, "err", s.GetError())
	select {
	case r.refused <- s.GetError():
	default:
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
