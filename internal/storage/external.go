package storage

import (
	"crypto/tls"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TLSFiles names the PEM files for talking TLS to an external etcd, as
// kube-apiserver's --etcd-cafile, --etcd-certfile and --etcd-keyfile.
// The zero value talks plain (or system-trusted https) as the endpoints say.
type TLSFiles struct {
	CAFile   string // verifies etcd's serving certificate
	CertFile string // client certificate, when etcd requires one
	KeyFile  string
}

func (f TLSFiles) empty() bool { return f.CAFile == "" && f.CertFile == "" && f.KeyFile == "" }

func (f TLSFiles) config() (*tls.Config, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("etcd client certificate and key must be given together")
	}
	info := transport.TLSInfo{TrustedCAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	return c, nil
}

// ConnectExternal dials an external etcd cluster, with TLS when files
// are given.
func ConnectExternal(endpoints []string, files TLSFiles) (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second}
	if !files.empty() {
		t, err := files.config()
		if err != nil {
			return nil, err
		}
		cfg.TLS = t
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect etcd %v: %w", endpoints, err)
	}
	return c, nil
}
