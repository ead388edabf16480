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
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	return start(bin, "server", "admin.kubeconfig", extra)
}

// StartUp runs `bin up` (server and node agent with its containerd) and
// waits for /readyz; NodeReady waits for the node.
func StartUp(bin string, extra ...string) (*Server, error) {
	return start(bin, "up", filepath.Join("server", "admin.kubeconfig"), extra)
}

func start(bin, command, kubeconfig string, extra []string) (*Server, error) {
	// Short: the agent's containerd socket lives under it.
	dir, err := os.MkdirTemp("", "skb")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{command, "--data-dir", dir, "--secure-port", strconv.Itoa(port)}, extra...)
	s := &Server{Dir: dir, Cmd: exec.Command(bin, args...), Started: time.Now()}
	s.Cmd.Stderr = os.Stderr
	if err := s.Cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.Config, err = waitReady(filepath.Join(dir, kubeconfig), 60*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	s.Ready = time.Now()
	return s, nil
}

// NodeReady waits until node reports Ready and returns when it did.
func (s *Server) NodeReady(ctx context.Context, node string) (time.Time, error) {
	client := s.Clients(1)[0]
	for {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return time.Now(), nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("node %s not ready: %w", node, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Close stops the server (SIGTERM, so an agent stops its pods and its
// containerd) and removes its data.
func (s *Server) Close() {
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = s.Cmd.Process.Kill()
		<-done
	}
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
