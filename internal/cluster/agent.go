package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/containerd"
	"github.com/skiff-dev/skiff/internal/controllers/localpath"
	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/dns"
	"github.com/skiff-dev/skiff/internal/ingress"
	"github.com/skiff-dev/skiff/internal/kubelet"
	"github.com/skiff-dev/skiff/internal/podnet"
	"github.com/skiff-dev/skiff/internal/proxy"
)

// AgentConfig configures `skiff agent`: the node's kubelet and, unless an
// endpoint is given, its own containerd.
type AgentConfig struct {
	DataDir  string
	NodeName string
	// Kubeconfig holds the node's credentials for the API server.
	Kubeconfig string
	// Servers, when more than one, are API servers of the same cluster to
	// fail over between.
	Servers []string
	// RuntimeEndpoint is an existing CRI socket; empty starts containerd.
	RuntimeEndpoint string
	// ImagesDir holds image archives imported into a started containerd.
	ImagesDir      string
	NodeIP         net.IP
	KubeletPort    int
	ClusterDNS     []string
	ClusterDomain  string
	CNIBridge      string
	KeepContainers bool
	// StorageDir is where the local-path provisioner keeps this node's
	// volumes (default DataDir/storage), announced in a node annotation.
	StorageDir string
	// LogDir defaults to /var/log/pods.
	LogDir     string
	Registerer prometheus.Registerer
	// NodeMetrics receives the service proxy's and the DNS server's series
	// (kubeproxy_*, coredns_*); nil gives them a registry of their own,
	// served at MetricsAddress.
	NodeMetrics prometheus.Registerer
	// MetricsAddress serves that registry's /metrics over HTTP, as
	// kube-proxy's --metrics-bind-address (empty: not served).
	MetricsAddress string
	Logger         *slog.Logger
	// ClusterCIDR is the pod network, for the service proxy's masquerading.
	ClusterCIDR string
	// DisableProxy leaves Service routing to another proxy.
	DisableProxy bool
	// DNSPort is where the node's cluster DNS listens on the node IP
	// (default 53); DisableDNS turns it off.
	DNSPort    int
	DisableDNS bool
	// IngressHTTPPort and IngressHTTPSPort are where the node serves
	// Ingresses on its IP (default 80 and 443); DisableIngress turns it off.
	IngressHTTPPort, IngressHTTPSPort int
	DisableIngress                    bool
	// KubeletTLS serves the kubelet API; nil leaves it off.
	KubeletTLS *kubelet.ServerTLS
	// Ready, when set, is closed once the kubelet runs.
	Ready chan<- struct{}
}

// RunAgent runs a node until ctx ends: containerd (unless external), then
// the kubelet. Everything it started is stopped when it returns.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	// A panic in one loop is logged and counted, not fatal.
	crash.InstallClientGoHandler()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("agent: no --node-name and no hostname: %w", err)
		}
		cfg.NodeName = strings.ToLower(h)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("agent: create data dir: %w", err)
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("agent: load kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	restCfg.QPS, restCfg.Burst = -1, 0 // the agent's own pods are few; no client throttling
	if err := withFailover(restCfg, cfg.Servers); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	restCfg.UserAgent = "skiff-kubelet/" + cfg.NodeName
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}

	endpoint := cfg.RuntimeEndpoint
	cniConfDir := ""
	if endpoint == "" {
		ctrDir := filepath.Join(cfg.DataDir, "containerd")
		cniConfDir = filepath.Join(ctrDir, "cni", "net.d")
		proc, err := containerd.Start(ctx, containerd.Config{Dir: ctrDir, CNIConfDir: cniConfDir, Logger: cfg.Logger})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		defer proc.Stop()
		endpoint = proc.Endpoint()
		if cfg.ImagesDir != "" {
			if err := importImages(ctx, proc.Socket(), cfg.ImagesDir, cfg.Logger); err != nil {
				return fmt.Errorf("agent: %w", err)
			}
		}
	}
	k, err := kubelet.New(ctx, kubelet.Config{
		Client:               client,
		NodeName:             cfg.NodeName,
		NodeIP:               cfg.NodeIP,
		RuntimeEndpoint:      endpoint,
		DataDir:              filepath.Join(cfg.DataDir, "kubelet"),
		LogDir:               cfg.LogDir,
		ContainerLogLinkDir:  containerLogLinkDir(cfg.LogDir),
		ClusterDNS:           cfg.ClusterDNS,
		ClusterDomain:        cfg.ClusterDomain,
		CNIConfDir:           cniConfDir,
		CNIBridge:            cfg.CNIBridge,
		Port:                 cfg.KubeletPort,
		KeepContainersOnExit: cfg.KeepContainers,
		// As upstream's kubelet: the attach/detach controller attaches this
		// node's volumes.
		Annotations: map[string]string{localpath.DirAnnotation: storageDir(cfg), "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
		TLS:         cfg.KubeletTLS,
		Registerer:  cfg.Registerer,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return err
	}
	if cfg.NodeMetrics == nil {
		reg := prometheus.NewRegistry()
		cfg.NodeMetrics = reg
		if cfg.MetricsAddress != "" {
			stop := serveNodeMetrics(cfg.MetricsAddress, reg, cfg.Logger)
			defer stop()
		}
	}
	var proxyDone chan struct{}
	if !cfg.DisableProxy {
		p, err := proxy.New(proxy.Config{Client: client, NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR,
			Registerer: cfg.NodeMetrics, Logger: cfg.Logger})
		if err != nil {
			return err
		}
		proxyDone = make(chan struct{})
		go func() {
			defer close(proxyDone)
			if err := p.Run(ctx); err != nil {
				cfg.Logger.Error("service proxy stopped", "err", err)
			}
		}()
	}
	if !cfg.DisableDNS {
		if srv := startDNS(ctx, client, cfg); srv != nil {
			defer srv.Wait()
		}
	}
	nodeIP := cfg.NodeIP
	if nodeIP == nil {
		nodeIP = kubelet.DefaultNodeIP()
	}
	routesDone := make(chan struct{})
	go func() {
		defer close(routesDone)
		if err := podnet.Run(ctx, podnet.Config{Client: client, NodeName: cfg.NodeName, NodeIP: nodeIP, Logger: cfg.Logger}); err != nil {
			cfg.Logger.Warn("pod routes", "err", err)
		}
	}()
	defer func() { <-routesDone }()
	if !cfg.DisableIngress {
		done := startIngress(ctx, client, cfg)
		defer func() { <-done }()
	}
	if cfg.Ready != nil {
		close(cfg.Ready)
	}
	err = k.Run(ctx)
	if proxyDone != nil {
		<-proxyDone
		// The pods are gone unless kept: so must the rules that lead to
		// them, or the next cluster on this host inherits dead routes.
		if !cfg.KeepContainers {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if cerr := proxy.Cleanup(cctx, nil); cerr != nil {
				cfg.Logger.Warn("remove service rules", "err", cerr)
			}
			cancel()
		}
	}
	return err
}

// containerLogLinkDir puts /var/log/containers beside /var/log/pods.
func containerLogLinkDir(logDir string) string {
	if logDir == "" {
		return "/var/log/containers"
	}
	return filepath.Join(filepath.Dir(logDir), "containers")
}

// IssueNodeKubeconfig writes a kubeconfig for a node agent on this
// server's machine, with a client certificate for system:node:<name>.
func (s *Server) IssueNodeKubeconfig(path, nodeName string) error {
	if s.pki == nil {
		return errors.New("server has no PKI")
	}
	cert, key, err := s.pki.IssueClientCert("system:node:"+nodeName, []string{"system:nodes"}, 365*24*time.Hour)
	if err != nil {
		return err
	}
	return pki.WriteKubeconfig(path, s.URL, s.pki.CAPEM, cert, key, "system:node:"+nodeName)
}

// IssueKubeletTLS signs a serving certificate for a node's kubelet API on
// this server's machine, valid for its name and addresses.
func (s *Server) IssueKubeletTLS(nodeName string, ips ...net.IP) (*kubelet.ServerTLS, error) {
	hosts := []string{nodeName, "localhost", "127.0.0.1"}
	for _, ip := range ips {
		if ip != nil {
			hosts = append(hosts, ip.String())
		}
	}
	cert, key, err := s.pki.IssueServingCert("system:node:"+nodeName, hosts, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	return &kubelet.ServerTLS{CertPEM: cert, KeyPEM: key, ClientCAPEM: s.pki.CAPEM}, nil
}

// startDNS serves cluster DNS on the node IP and publishes it as an
// endpoint of kube-dns. A node without DNS still runs pods, so failures
// are logged, not fatal.
func startDNS(ctx context.Context, client kubernetes.Interface, cfg AgentConfig) *dns.Server {
	ip := cfg.NodeIP
	if ip == nil {
		ip = kubelet.DefaultNodeIP()
	}
	port := cfg.DNSPort
	if port == 0 {
		port = 53
	}
	srv, err := dns.Start(ctx, dns.Config{Client: client, Addr: net.JoinHostPort(ip.String(), strconv.Itoa(port)),
		Domain: cfg.ClusterDomain, Registerer: cfg.NodeMetrics, Logger: cfg.Logger})
	if err != nil {
		cfg.Logger.Warn("cluster DNS not started; pods cannot resolve service names", "err", err)
		return nil
	}
	go func() {
		if err := dns.Publish(ctx, client, cfg.NodeName, srv.Addr()); err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("publish cluster DNS endpoint", "err", err)
		}
	}()
	return srv
}

// startIngress serves Ingresses on the node IP; like DNS, a failure to bind
// is logged and the node runs on.
func startIngress(ctx context.Context, client kubernetes.Interface, cfg AgentConfig) <-chan struct{} {
	done := make(chan struct{})
	ip := cfg.NodeIP
	if ip == nil {
		ip = kubelet.DefaultNodeIP()
	}
	httpPort, httpsPort := cfg.IngressHTTPPort, cfg.IngressHTTPSPort
	if httpPort == 0 {
		httpPort = 80
	}
	if httpsPort == 0 {
		httpsPort = 443
	}
	c, err := ingress.New(ingress.Config{Client: client, Logger: cfg.Logger,
		HTTPAddr:  net.JoinHostPort(ip.String(), strconv.Itoa(httpPort)),
		HTTPSAddr: net.JoinHostPort(ip.String(), strconv.Itoa(httpsPort))})
	if err != nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		if err := c.Run(ctx); err != nil {
			cfg.Logger.Warn("ingress controller not serving", "err", err)
		}
	}()
	return done
}

// storageDir is the node's local-path volume directory: the configured one,
// or DataDir/storage, absolute because pods' hostPath volumes name it.
func storageDir(cfg AgentConfig) string {
	dir := cfg.StorageDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "storage")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
