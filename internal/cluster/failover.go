package cluster

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// failoverDialer connects to the first API server that answers, starting
// with the one that worked last, so an agent rides out the loss of a
// server: broken connections are redialled and land on another one.
type failoverDialer struct {
	mu    sync.Mutex
	addrs []string // host:port
	good  int
	d     net.Dialer
}

func (f *failoverDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	f.mu.Lock()
	start, addrs := f.good, f.addrs
	f.mu.Unlock()
	var lastErr error
	for i := range addrs {
		idx := (start + i) % len(addrs)
		conn, err := f.d.DialContext(ctx, network, addrs[idx])
		if err == nil {
			f.mu.Lock()
			f.good = idx
			f.mu.Unlock()
			return conn, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no API server answers (%v): %w", addrs, lastErr)
}

// withFailover makes cfg use several API servers. They share the cluster
// CA and all serving certificates name "kubernetes", which is what the
// client then verifies instead of the address it happened to reach.
func withFailover(cfg *rest.Config, servers []string) error {
	if len(servers) < 2 {
		return nil
	}
	f := &failoverDialer{d: net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}}
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return fmt.Errorf("bad server URL %q", s)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "6443")
		}
		f.addrs = append(f.addrs, host)
	}
	cfg.Dial = f.DialContext
	cfg.TLSClientConfig.ServerName = "kubernetes"
	return nil
}
