package snapshot

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// TestRestoreExternalMember restores a snapshot as a member of an
// external etcd cluster (etcd's own layout) and starts etcd on it with the
// same name and peer URL.
func TestRestoreExternalMember(t *testing.T) {
	ctx := context.Background()
	src := startEtcd(t, filepath.Join(t.TempDir(), "etcd"))
	put, err := src.Client.Put(ctx, "/registry/namespaces/prod", "v")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	if _, err := Save(ctx, src.Client, file, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := url.URL{Scheme: "http", Host: l.Addr().String()}
	l.Close()
	dir := filepath.Join(t.TempDir(), "e0")
	m := &ExternalMember{Name: "e0", PeerURL: peer.String(), InitialCluster: "e0=" + peer.String(), InitialClusterToken: "t"}
	if _, err := Restore(file, dir, RestoreOptions{Member: m}); err != nil {
		t.Fatal(err)
	}

	cfg := embed.NewConfig()
	cfg.Dir, cfg.Name = dir, "e0"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	client := url.URL{Scheme: "unix", Path: filepath.Join(t.TempDir(), "c.sock")}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.InitialCluster = "e0=" + peer.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("restored member did not become ready")
	}
	c := v3client.New(e.Server)
	defer c.Close()
	resp, err := c.Get(ctx, "/registry/namespaces/prod")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("restored member: %v %v", resp, err)
	}
	members, err := c.MemberList(ctx)
	if err != nil || len(members.Members) != 1 || members.Members[0].Name != "e0" {
		t.Fatalf("members: %v %v", members, err)
	}
}
