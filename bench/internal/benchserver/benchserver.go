// Package benchserver starts a `skiff server` process for the benchmark
// commands, waits until it is ready, and hands out client-go clients.
package benchserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Server is a running skiff server process.
type Server struct {
	Dir     string
	Config  *rest.Config
	Cmd     *exec.Cmd
	Started time.Time // when the process was started
	Ready   time.Time // when /readyz first answered ok
}

// Start runs `bin server` on a free loopback port in a new data dir, with
// extra flags, and waits for /readyz.
func Start(bin string, extra ...string) (*Server, error) {
	dir, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{"server", "--data-dir", dir, "--secure-port", strconv.Itoa(port)}, extra...)
	s := &Server{Dir: dir, Cmd: exec.Command(bin, args...), Started: time.Now()}
	s.Cmd.Stderr = os.Stderr
	if err := s.Cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.Config, err = waitReady(filepath.Join(dir, "admin.kubeconfig"), 60*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	s.Ready = time.Now()
	return s, nil
}

// Close stops the server and removes its data.
func (s *Server) Close() {
	_ = s.Cmd.Process.Kill()
	_ = s.Cmd.Wait()
	os.RemoveAll(s.Dir)
}

// Clients returns n clientsets, each on its own connection and without a
// client-side rate limit.
func (s *Server) Clients(n int) []kubernetes.Interface {
	out := make([]kubernetes.Interface, n)
	for i := range out {
		c := rest.CopyConfig(s.Config)
		c.QPS, c.Burst = -1, 0
		// A distinct (no-op) wrapper gives each clientset its own transport.
		c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rt }
		out[i] = kubernetes.NewForConfigOrDie(c)
	}
	return out
}

func waitReady(kubeconfig string, timeout time.Duration) (*rest.Config, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig); err == nil {
			cfg.QPS = -1
			if c, err := kubernetes.NewForConfig(cfg); err == nil {
				if b, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background()); err == nil && string(b) == "ok" {
					return cfg, nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, fmt.Errorf("server not ready after %s", timeout)
}
