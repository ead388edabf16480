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
	etcd   *embed.Etcd
	Client *clientv3.Client
	dir    string
}

// StartEmbedded runs etcd with its data under dir. It listens only on
// kernel-chosen loopback ports, so several servers can share one machine;
// the API server reaches it in-process and never through those ports.
func StartEmbedded(ctx context.Context, dir string) (*Embedded, error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "skiff"
	// etcd logs expected shutdown errors at error level; the API server
	// reports storage failures through the client instead.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	loopback := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls = []url.URL{loopback}
	cfg.AdvertiseClientUrls = []url.URL{loopback}
	cfg.ListenPeerUrls = []url.URL{loopback}
	cfg.AdvertisePeerUrls = []url.URL{loopback}
	cfg.InitialCluster = cfg.Name + "=" + loopback.String()
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
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready", dir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	if len(e.Clients) > 0 {
		url := "http://" + e.Clients[0].Addr().String()
		if err := os.WriteFile(filepath.Join(dir, clientURLFile), []byte(url+"\n"), 0o600); err != nil {
			e.Close()
			return nil, fmt.Errorf("record etcd client URL: %w", err)
		}
	}
	return &Embedded{etcd: e, Client: v3client.New(e.Server), dir: dir}, nil
}

// Close stops etcd.
func (e *Embedded) Close() {
	e.Client.Close()
	e.etcd.Close()
	os.Remove(filepath.Join(e.dir, clientURLFile))
}

// ConnectExternal dials an external etcd cluster.
func ConnectExternal(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("connect etcd %v: %w", endpoints, err)
	}
	return c, nil
}
