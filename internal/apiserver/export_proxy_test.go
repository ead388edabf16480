package apiserver

import (
	"context"
	"net"
	"net/http"
)

// DialWorkloadsOnLoopback makes the pod and service proxies dial
// 127.0.0.1 on the port they meant to reach, so a test's backends can pose
// as pods with routable addresses; the returned function restores the
// transport.
func DialWorkloadsOnLoopback() (restore func()) {
	old := workloadTransport
	t := old.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}
	workloadTransport = t
	return func() { workloadTransport = old }
}
