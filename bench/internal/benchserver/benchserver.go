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

	bin, kubeconfig string
	args            []string
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
	s := &Server{Dir: dir, bin: bin, kubeconfig: filepath.Join(dir, kubeconfig),
		args: append([]string{command, "--data-dir", dir, "--secure-port", strconv.Itoa(port)}, extra...)}
	if err := s.run(60 * time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// run starts the process and waits up to timeout for /readyz.
func (s *Server) run(timeout time.Duration) error {
	s.Cmd = exec.Command(s.bin, s.args...)
	s.Cmd.Stderr = os.Stderr
	s.Started = time.Now()
	if err := s.Cmd.Start(); err != nil {
		return err
	}
	cfg, err := waitReady(s.kubeconfig, timeout)
	if err != nil {
		return err
	}
	s.Config, s.Ready = cfg, time.Now()
	return nil
}

// Restart stops the server as Close does, keeping its data, and starts it
// again on the same data dir and port; Started and Ready become the new
// process's. A server with much stored takes longer to get ready, hence
// the timeout.
func (s *Server) Restart(timeout time.Duration) error {
	s.stop()
	return s.run(timeout)
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
	s.stop()
	os.RemoveAll(s.Dir)
}

// stop ends the process: SIGTERM, then SIGKILL after a minute.
func (s *Server) stop() {
	if s.Cmd == nil || s.Cmd.Process == nil || s.Cmd.ProcessState != nil {
		return
	}
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = s.Cmd.Process.Kill()
		<-done
	}
}

// Clients returns n clientsets, each on its own connection and without a
// client-side rate limit.
func (s *Server) Clients(n int) []kubernetes.Interface {
	return Clients(s.Config, n)
}

// Clients returns n clientsets for cfg, as Server.Clients does; for a
// control plane the bench did not start.
func Clients(cfg *rest.Config, n int) []kubernetes.Interface {
	out := make([]kubernetes.Interface, n)
	for i := range out {
		c := rest.CopyConfig(cfg)
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
