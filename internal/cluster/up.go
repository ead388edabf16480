package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/kubelet"
)

// UpConfig configures `skiff up`: a server and an agent in one process.
type UpConfig struct {
	Server         ServerConfig // DataDir is set from DataDir
	DataDir        string
	NodeName       string
	ImagesDir      string
	KubeletPort    int
	NodeIP         net.IP
	KeepContainers bool
	// StorageDir holds the node's local-path volumes (default DIR/agent/storage).
	StorageDir string
	CNIBridge  string
	LogDir     string
	DNSPort    int
	// IngressHTTPPort and IngressHTTPSPort default to 80 and 443.
	IngressHTTPPort, IngressHTTPSPort int
	Logger                            *slog.Logger
}

// RunUp runs a single-node cluster until ctx ends. The agent stops first
// (its pods with it, unless KeepContainers) while the API server still
// answers, then the control plane.
func RunUp(ctx context.Context, cfg UpConfig) error {
	start := time.Now()
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	serverCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	cfg.Server.DataDir = filepath.Join(cfg.DataDir, "server")
	cfg.Server.Logger = log
	srv, err := StartServer(serverCtx, cfg.Server)
	if err != nil {
		return err
	}
	defer srv.Wait()
	defer stopServer()

	node := cfg.NodeName
	if node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("up: no node name: %w", err)
		}
		node = strings.ToLower(h)
	}
	agentDir := filepath.Join(cfg.DataDir, "agent")
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		return err
	}
	kubeconfig := filepath.Join(agentDir, "kubelet.kubeconfig")
	if err := srv.IssueNodeKubeconfig(kubeconfig, node); err != nil {
		return fmt.Errorf("up: node credentials: %w", err)
	}
	nodeIP := cfg.NodeIP
	if nodeIP == nil {
		nodeIP = kubelet.DefaultNodeIP()
	}
	kubeletTLS, err := srv.IssueKubeletTLS(node, nodeIP)
	if err != nil {
		return fmt.Errorf("up: kubelet certificate: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		select {
		case <-ready:
		case <-ctx.Done():
			return
		}
		if err := waitNodeReady(ctx, srv, node); err != nil {
			return
		}
		log.Info("cluster up", "elapsed", time.Since(start).Round(time.Millisecond), "node", node)
		fmt.Fprintf(os.Stderr, "\nSkiff is up (node %s Ready in %s). Use it with:\n  export KUBECONFIG=%s\n  kubectl get nodes\n\n",
			node, time.Since(start).Round(time.Millisecond), srv.Kubeconfig)
		if srv.DashboardURL != "" {
			fmt.Fprintf(os.Stderr, "The dashboard is at %s (sign in with a token, e.g. from `kubectl create token`).\n\n", srv.DashboardURL)
		}
	}()
	return RunAgent(ctx, AgentConfig{
		// One process: the server's /metrics serves the proxy and DNS too.
		NodeMetrics:     prometheus.DefaultRegisterer,
		DataDir:         agentDir,
		NodeName:        node,
		Kubeconfig:      kubeconfig,
		ImagesDir:       cfg.ImagesDir,
		NodeIP:          nodeIP,
		KubeletTLS:      kubeletTLS,
		ClusterCIDR:     cfg.Server.ClusterCIDR,
		DNSPort:         cfg.DNSPort,
		IngressHTTPPort: cfg.IngressHTTPPort, IngressHTTPSPort: cfg.IngressHTTPSPort,
		KubeletPort:    cfg.KubeletPort,
		ClusterDNS:     []string{ClusterDNSIP(cfg.Server.ServiceCIDR)},
		KeepContainers: cfg.KeepContainers,
		StorageDir:     cfg.StorageDir,
		CNIBridge:      cfg.CNIBridge,
		LogDir:         cfg.LogDir,
		Logger:         log,
		Ready:          ready,
	})
}

// ClusterDNSIP is the cluster DNS address for a service CIDR ("" picks the
// default range).
func ClusterDNSIP(serviceCIDR string) string {
	if serviceCIDR == "" {
		serviceCIDR = defaultServiceCIDR
	}
	_, n, err := net.ParseCIDR(serviceCIDR)
	if err != nil {
		return ""
	}
	return apiserver.ClusterDNSServiceIP(n).String()
}

// waitNodeReady polls until the node reports Ready.
func waitNodeReady(ctx context.Context, srv *Server, node string) error {
	client, err := srv.Client()
	if err != nil {
		return err
	}
	for {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
