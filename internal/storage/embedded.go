package storage

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// Embedded is an etcd server running inside this process.
type Embedded struct {
	etcd    *embed.Etcd
	Client  *clientv3.Client
	dir     string
	sockDir string // a private temporary dir holding the socket, if any
}

// clientSocket is the name of the embedded etcd's client socket in its dir.
const clientSocket = "client.sock"

// maxSocketPath is below Linux's 108-byte sun_path limit.
const maxSocketPath = 100

// legacyPeerURL is the peer URL that every embedded member has advertised
// (and so has stored in its membership). A single member never dials its
// peers, so nothing listens on it; keeping the same value means data dirs
// made by earlier versions start unchanged.
var legacyPeerURL = url.URL{Scheme: "http", Host: "127.0.0.1:0"}

// StartEmbedded runs etcd with its data under dir. The API server reaches
// it in-process; the only listener is a unix socket (mode 0600, in a 0700
// dir) for `skiff etcd-snapshot save`, so no other local user can reach
// etcd, and several servers can share one machine. There is no peer
// listener: a single member has no peers.
func StartEmbedded(ctx context.Context, dir string) (*Embedded, error) {
	// etcd wants its data dir private; older versions may have left it wider.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(abs, clientSocket)
	var sockDir string
	if len(sock) > maxSocketPath {
		// A deep data dir cannot hold a socket; use a private temporary
		// dir instead. The client-url file says where it is.
		if sockDir, err = os.MkdirTemp("", "skiff-etcd-"); err != nil {
			return nil, fmt.Errorf("embedded etcd socket dir: %w", err)
		}
		sock = filepath.Join(sockDir, clientSocket)
	}
	fail := func(err error) (*Embedded, error) {
		if sockDir != "" {
			os.RemoveAll(sockDir)
		}
		return nil, err
	}

	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "skiff"
	// etcd logs expected shutdown errors at error level; the API server
	// reports storage failures through the client instead.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	client := url.URL{Scheme: "unix", Path: sock}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = nil
	cfg.AdvertisePeerUrls = []url.URL{legacyPeerURL}
	cfg.InitialCluster = cfg.Name + "=" + legacyPeerURL.String()
	cfg.WalDir = filepath.Join(dir, "wal")
	// A single member elects itself; short ticks make that (and so the
	// server's start) take tens of milliseconds instead of about a second.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	// Size and snapshot tuning for a single member holding API objects.
	cfg.QuotaBackendBytes = 8 << 30
	cfg.SnapshotCount = 10000

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fail(fmt.Errorf("start embedded etcd in %s: %w", dir, err))
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return fail(fmt.Errorf("embedded etcd in %s did not become ready", dir))
	case <-ctx.Done():
		e.Close()
		return fail(ctx.Err())
	}
	// The socket's dir is already private; tighten the socket as well.
	if err := os.Chmod(sock, 0o600); err != nil {
		e.Close()
		return fail(fmt.Errorf("embedded etcd socket: %w", err))
	}
	if err := os.WriteFile(filepath.Join(dir, clientURLFile), []byte(client.String()+"\n"), 0o600); err != nil {
		e.Close()
		return fail(fmt.Errorf("record etcd client URL: %w", err))
	}
	return &Embedded{etcd: e, Client: v3client.New(e.Server), dir: dir, sockDir: sockDir}, nil
}

// Close stops etcd.
func (e *Embedded) Close() {
	e.Client.Close()
	e.etcd.Close()
	os.Remove(filepath.Join(e.dir, clientURLFile))
	if e.sockDir != "" {
		os.RemoveAll(e.sockDir)
	}
}
