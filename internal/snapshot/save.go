package snapshot

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/skiff-dev/skiff/internal/storage"
)

// SaveOptions tune Save.
type SaveOptions struct {
	// SkiffVersion is recorded in the metadata.
	SkiffVersion string
	// Now is the clock for the metadata's time (tests); nil is time.Now.
	Now func() time.Time
}

// Save streams etcd's snapshot of the database (consistent with the moment
// it was asked for, checksum appended by etcd) to file.part, verifies it,
// renames it to file and writes file.json. On error nothing is left at
// file.
func Save(ctx context.Context, c *clientv3.Client, file string, opts SaveOptions) (*Metadata, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	meta := &Metadata{SkiffVersion: opts.SkiffVersion, Time: now().UTC()}
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	members, err := c.MemberList(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("snapshot: list etcd members (is etcd running?): %w", err)
	}
	meta.ClusterID = fmt.Sprintf("%x", members.Header.GetClusterId())
	for _, m := range members.Members {
		meta.Members = append(meta.Members, Member{ID: fmt.Sprintf("%x", m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs})
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	part := file + ".part"
	version, err := download(ctx, c, part)
	if err != nil {
		os.Remove(part)
		return nil, err
	}
	info, err := Verify(part)
	if err != nil {
		os.Remove(part)
		return nil, fmt.Errorf("etcd sent a bad snapshot: %w", err)
	}
	if err := os.Rename(part, file); err != nil {
		os.Remove(part)
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	meta.EtcdVersion, meta.Revision, meta.Size, meta.SHA256 = version, info.Revision, info.Size, info.SHA256
	if err := writeMetadata(file, meta); err != nil {
		return nil, err
	}
	syncDir(filepath.Dir(file))
	return meta, nil
}

// download copies etcd's snapshot stream into path and syncs it.
func download(ctx context.Context, c *clientv3.Client, path string) (string, error) {
	resp, err := c.SnapshotWithVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("snapshot: ask etcd: %w", err)
	}
	defer resp.Snapshot.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	_, err = io.Copy(f, resp.Snapshot)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("snapshot: write %s: %w", path, err)
	}
	return resp.Version, nil
}

func writeMetadata(file string, meta *Metadata) error {
	raw, err := jsonIndent(meta)
	if err != nil {
		return err
	}
	return writeFileAtomic(file+MetadataSuffix, raw)
}

// syncDir makes renames in dir durable; failure only weakens durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// ConnectEmbedded dials the embedded etcd of a running server whose etcd
// lives in etcdDir, through the unix socket it records there.
func ConnectEmbedded(etcdDir string) (*clientv3.Client, error) {
	url, err := storage.EmbeddedClientURL(etcdDir)
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to the embedded etcd at %s: %w", url, err)
	}
	return c, nil
}

// ConnectExternal dials an external etcd cluster, with TLS when files are
// given (as `skiff server --etcd-servers --etcd-cafile ...`). Its client
// logs nothing: errors come back to the caller.
func ConnectExternal(endpoints []string, caFile, certFile, keyFile string) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()}
	if caFile != "" || certFile != "" || keyFile != "" {
		if (certFile == "") != (keyFile == "") {
			return nil, fmt.Errorf("etcd client certificate and key must be given together")
		}
		info := transport.TLSInfo{TrustedCAFile: caFile, CertFile: certFile, KeyFile: keyFile}
		t, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
		cfg.TLS = t
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect etcd %v: %w", endpoints, err)
	}
	return c, nil
}
