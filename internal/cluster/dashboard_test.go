package cluster

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/dashboard"
)

func TestServerServesDashboardWithClusterCA(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := StartServer(ctx, ServerConfig{
		DataDir: t.TempDir(), SecurePort: 0, DashboardPort: port,
		DisableScheduler: true, DisableControllers: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); srv.Wait() }()
	if want := "https://127.0.0.1:" + strconv.Itoa(port) + "/"; srv.DashboardURL != want {
		t.Fatalf("DashboardURL = %q, want %q", srv.DashboardURL, want)
	}
	// The serving certificate verifies against the cluster CA.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: srv.pki.CAPool, MinVersion: tls.VersionTLS12}}}
	resp, err := client.Get(srv.DashboardURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Skiff") {
		t.Fatalf("GET / = %d %.80q", resp.StatusCode, body)
	}
	// Without a token the proxy is anonymous, whatever the dashboard may do.
	resp, err = client.Get(srv.DashboardURL + "apis/metrics.k8s.io/v1beta1/pods")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous metrics through the dashboard = %d, want 403", resp.StatusCode)
	}
	// Its identity's role is in place for the usage sampler.
	admin, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := admin.RbacV1().ClusterRoleBindings().Get(ctx, dashboard.RoleName, metav1.GetOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard ClusterRoleBinding: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
