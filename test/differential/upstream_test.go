package differential

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
)

// binDir is where the upstream binaries are, or "" to skip these tests.
func binDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("SKIFF_UPSTREAM_BIN")
	if dir == "" {
		t.Skip("SKIFF_UPSTREAM_BIN not set; run make differential")
	}
	for _, b := range []string{"kube-apiserver", "kube-scheduler", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("upstream binary missing (make upstream): %v", err)
		}
	}
	return dir
}

// endpoint is an API server to send raw requests to.
type endpoint struct {
	name   string
	base   string
	token  string // bearer token, if the client has no certificate
	client *http.Client
}

// newRequest builds a request to e with its credentials.
func (e *endpoint) newRequest(method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		return nil, err
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	return req, nil
}

// freePorts reserves n distinct free TCP ports on 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startUpstream runs the upstream etcd and kube-apiserver for the duration
// of t, with kube-apiserver's default flags except what it needs to start:
// etcd, serving certificate, client CA and service-account keys.
func startUpstream(t testing.TB) *endpoint {
	t.Helper()
	bin := binDir(t)
	dir := t.TempDir()
	b, err := pki.Ensure(filepath.Join(dir, "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, typ string, data []byte) string {
		p := filepath.Join(dir, "pki", name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: data}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	saPriv := write("sa.key", "EC PRIVATE KEY", der)
	saPub := write("sa.pub", "PUBLIC KEY", pubDER)

	ports := freePorts(t, 3)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	ctx, cancel := context.WithCancel(context.Background())
	etcd := exec.CommandContext(ctx, filepath.Join(bin, "etcd"), "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-url", etcdURL, "--listen-peer-url", "http://127.0.0.1:"+strconv.Itoa(ports[1]))
	apiserver := exec.CommandContext(ctx, filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(ports[2]),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--tls-cert-file", filepath.Join(dir, "pki", "server.crt"),
		"--tls-private-key-file", filepath.Join(dir, "pki", "server.key"),
		"--client-ca-file", filepath.Join(dir, "pki", "ca.crt"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saPriv,
	)
	var waits []chan struct{}
	for _, c := range []*exec.Cmd{etcd, apiserver} {
		logf, err := os.Create(filepath.Join(dir, filepath.Base(c.Path)+".log"))
		if err != nil {
			t.Fatal(err)
		}
		c.Stdout, c.Stderr = logf, logf
		c.WaitDelay = 10 * time.Second
		if err := c.Start(); err != nil {
			t.Fatalf("start %s: %v", c.Path, err)
		}
		done := make(chan struct{})
		go func() { c.Wait(); logf.Close(); close(done) }()
		waits = append(waits, done)
	}
	t.Cleanup(func() {
		cancel()
		for _, w := range waits {
			<-w
		}
	})

	cert, err := tls.X509KeyPair(b.AdminCertPEM, b.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ep := &endpoint{
		name: "upstream",
		base: "https://127.0.0.1:" + strconv.Itoa(ports[2]),
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: b.CAPool, Certificates: []tls.Certificate{cert}},
		}},
	}
	if err := ep.waitReady(90*time.Second, waits[1]); err != nil {
		logs, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
		t.Fatalf("upstream kube-apiserver: %v\n%s", err, tail(logs, 4000))
	}
	return ep
}

// waitReady polls /readyz until it answers 200, the deadline passes or
// exited is closed.
func (e *endpoint) waitReady(d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited")
		default:
		}
		resp, err := e.client.Get(e.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", d)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
