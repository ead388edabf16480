// Command testdriver is a small but real CSI driver for Skiff's end-to-end
// tests. Its volumes are directories on the node:
//
//   - Controller: CreateVolume makes <state-dir>/volumes/<id> (recording
//     the size asked for in <state-dir>/capacities/<id>), DeleteVolume
//     removes it; ControllerPublishVolume records the attachment in
//     <state-dir>/attachments/<id> and returns a publish context, which
//     ControllerUnpublishVolume drops.
//   - Node (STAGE_UNSTAGE_VOLUME): NodeStageVolume bind-mounts the volume's
//     directory at the staging path, NodePublishVolume bind-mounts the
//     staging path at the target path; unpublish and unstage unmount.
//     With a Block capability, staging attaches a sparse file of the
//     volume's size (<state-dir>/devices/<id>) to a loop device and
//     publishing bind-mounts the device's node onto the target file.
//   - GetCapacity reports -capacity less the sizes of the volumes created
//     (or, with -capacity 0, the state dir's free space), for
//     CSIStorageCapacity objects.
//   - NodeGetInfo reports -node-id (NODE_NAME from the downward API) and a
//     topology segment naming the node.
//
// It serves all three services on one unix socket (-endpoint or
// CSI_ENDPOINT), as drivers deployed with sidecars do. The node paths it
// mounts at are the kubelet's host paths, so a DaemonSet must mount them
// at the same paths with Bidirectional propagation.
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

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
)

// topologyKey is the segment NodeGetInfo reports, so a test can see the
// kubelet copy it into CSINode and the Node's labels.
const topologyKey = "topology.csi.skiff.test/node"

func main() {
	endpoint := flag.String("endpoint", os.Getenv("CSI_ENDPOINT"), "the CSI socket: a path or unix:///path (default $CSI_ENDPOINT)")
	name := flag.String("driver-name", "csi.skiff.test", "the driver's name, as in CSIDriver objects and PersistentVolumes")
	stateDir := flag.String("state-dir", "/var/lib/csi-testdriver", "where volume directories and attachment records live")
	nodeID := flag.String("node-id", os.Getenv("NODE_NAME"), "this node's ID for NodeGetInfo (default $NODE_NAME)")
	capacity := flag.Int64("capacity", 0, "bytes GetCapacity reports, less the volumes created; 0 reports the free space of -state-dir")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *endpoint, *name, *stateDir, *nodeID, *capacity); err != nil {
		log.Error("testdriver failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, endpoint, name, stateDir, nodeID string, capacity int64) error {
	socket := strings.TrimPrefix(endpoint, "unix://")
	if socket == "" {
		return errors.New("no endpoint: set -endpoint or CSI_ENDPOINT")
	}
	st, err := openState(stateDir)
	if err != nil {
		return err
	}
	// A socket left by an earlier instance would make Listen fail.
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return err
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}

	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls(log)))
	csi.RegisterIdentityServer(srv, &identity{name: name})
	csi.RegisterControllerServer(srv, &controller{state: st, capacity: capacity})
	csi.RegisterNodeServer(srv, &node{state: st, nodeID: nodeID, devices: &blockDevices{devDir: "/dev", sysDir: "/sys"}})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	log.Info("serving CSI", "driver", name, "endpoint", socket, "node", nodeID, "state", stateDir, "capacity", capacity)
	return srv.Serve(lis)
}

// logCalls logs every CSI call and its outcome: the test reads these logs
// when something fails.
func logCalls(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			log.Warn("call failed", "method", info.FullMethod, "request", req, "err", err)
		} else {
			log.Info("call", "method", info.FullMethod, "request", req)
		}
		return resp, err
	}
}
