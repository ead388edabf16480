package storage

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func TestEmbeddedListensOnlyOnPrivateSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	e, err := StartEmbedded(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if len(e.etcd.Peers) != 0 {
		t.Errorf("embedded etcd has %d peer listeners, want none", len(e.etcd.Peers))
	}
	for _, l := range e.etcd.Clients {
		if l.Addr().Network() != "unix" {
			t.Errorf("client listener on %s %s, want only a unix socket", l.Addr().Network(), l.Addr())
		}
	}
	assertMode(t, dir, 0o700)
	assertMode(t, filepath.Join(dir, clientSocket), 0o600)

	// The recorded URL reaches etcd (this is what etcd-snapshot uses).
	raw, err := os.ReadFile(filepath.Join(dir, clientURLFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "unix://") {
		t.Errorf("client URL %q is not a unix socket", raw)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{strings.TrimSpace(string(raw))}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put through the socket: %v", err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %o, want %o", path, got, want)
	}
}

func TestEmbeddedLongDirUsesPrivateTempSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	e, err := StartEmbedded(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	sockDir := e.sockDir
	if sockDir == "" {
		t.Fatal("expected a temporary socket dir for a deep data dir")
	}
	assertMode(t, sockDir, 0o700)
	// The recorded client URL points at the private socket.
	url, err := EmbeddedClientURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(url, sockDir) {
		t.Errorf("client URL %q is not under %s", url, sockDir)
	}
	e.Close()
	if _, err := os.Stat(sockDir); !os.IsNotExist(err) {
		t.Errorf("temporary socket dir left behind: %v", err)
	}
}

// A data dir made by the previous version (client and peer listeners on
// loopback TCP) starts, keeps its data and no longer listens on TCP.
func TestEmbeddedStartsLegacyDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	startLegacy(t, dir)

	e, err := StartEmbedded(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	resp, err := e.Client.Get(context.Background(), "/registry/legacy")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "kept" {
		t.Errorf("legacy key: %v", resp.Kvs)
	}
	if len(e.etcd.Peers) != 0 {
		t.Error("peer listener on a legacy data dir")
	}
}

// startLegacy runs etcd configured as StartEmbedded was before it moved to
// a unix socket, writes one key and stops.
func startLegacy(t *testing.T, dir string) {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "skiff"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	loopback := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{loopback}
	cfg.AdvertiseClientUrls = []url.URL{loopback}
	cfg.ListenPeerUrls = []url.URL{loopback}
	cfg.AdvertisePeerUrls = []url.URL{loopback}
	cfg.InitialCluster = cfg.Name + "=" + loopback.String()
	cfg.WalDir = filepath.Join(dir, "wal")
	cfg.TickMs, cfg.ElectionMs = 10, 100
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("legacy etcd not ready")
	}
	c := clientFor(t, e)
	if _, err := c.Put(context.Background(), "/registry/legacy", "kept"); err != nil {
		t.Fatal(err)
	}
}

func clientFor(t *testing.T, e *embed.Etcd) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + e.Clients[0].Addr().String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
