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
	"github.com/skiff-dev/skiff/internal/lifecycle"
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

// RunAgent runs a node until ctx ends, as a lifecycle.Group started in
// this order: containerd (unless external) and its image import, the node
// metrics server, the service proxy, DNS, pod routes, ingress, the kubelet;
// then Ready is closed. They stop in reverse order, so everything it
// started is stopped when it returns, the kubelet (and its pods) first and
// containerd last.
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

	var g lifecycle.Group
	g.Logger = cfg.Logger
	// Set by the containerd component when Skiff runs its own.
	endpoint, cniConfDir := cfg.RuntimeEndpoint, ""
	var pinnedImages []string
	if endpoint == "" {
		g.Add(containerdComponents(cfg, &endpoint, &cniConfDir, &pinnedImages)...)
	}
	if cfg.NodeMetrics == nil {
		reg := prometheus.NewRegistry()
		cfg.NodeMetrics = reg
		if cfg.MetricsAddress != "" {
			var stop func()
			g.Add(lifecycle.Component{Name: "node-metrics",
				Start: func(context.Context) error { stop = serveNodeMetrics(cfg.MetricsAddress, reg, cfg.Logger); return nil },
				Stop:  func() { stop() }})
		}
	}
	if !cfg.DisableProxy {
		g.Add(proxyComponent(client, cfg))
	}
	if !cfg.DisableDNS {
		var srv *dns.Server
		g.Add(lifecycle.Component{Name: "dns",
			Start: func(ctx context.Context) error { srv = startDNS(ctx, client, cfg); return nil },
			Stop: func() {
				if srv != nil {
					srv.Wait()
				}
			}})
	}
	nodeIP := cfg.NodeIP
	if nodeIP == nil {
		nodeIP = kubelet.DefaultNodeIP()
	}
	g.Add(lifecycle.Component{Name: "pod-routes", Run: func(ctx context.Context) error {
		if err := podnet.Run(ctx, podnet.Config{Client: client, NodeName: cfg.NodeName, NodeIP: nodeIP, Logger: cfg.Logger}); err != nil {
			cfg.Logger.Warn("pod routes", "err", err)
		}
		return nil
	}})
	if !cfg.DisableIngress {
		g.Add(ingressComponent(client, cfg))
	}
	// The kubelet comes last: its pods start once the node's DNS serves,
	// and on the way out it stops them first, while containerd, routes
	// and DNS still work.
	var k *kubelet.Kubelet
	g.Add(lifecycle.Component{Name: "kubelet",
		Start: func(ctx context.Context) error {
			var err error
			k, err = kubelet.New(ctx, kubelet.Config{
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
				PinnedImages:         pinnedImages,
				// As upstream's kubelet: the attach/detach controller attaches this
				// node's volumes.
				Annotations: map[string]string{localpath.DirAnnotation: storageDir(cfg), "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
				TLS:         cfg.KubeletTLS,
				Registerer:  cfg.Registerer,
				Logger:      cfg.Logger,
			})
			return err
		},
		Run: func(ctx context.Context) error { return k.Run(ctx) }})
	if cfg.Ready != nil {
		g.Add(lifecycle.Component{Name: "ready", Start: func(context.Context) error { close(cfg.Ready); return nil }})
	}
	if err := g.Run(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// containerdComponents start the node's own containerd and import the
// image archives into it; endpoint and cniConfDir are set once started,
// pinnedImages to the archives' image names once imported.
func containerdComponents(cfg AgentConfig, endpoint, cniConfDir *string, pinnedImages *[]string) []lifecycle.Component {
	ctrDir := filepath.Join(cfg.DataDir, "containerd")
	*cniConfDir = filepath.Join(ctrDir, "cni", "net.d")
	var proc *containerd.Process
	cs := []lifecycle.Component{{Name: "containerd",
		Start: func(ctx context.Context) error {
			var err error
			proc, err = containerd.Start(ctx, containerd.Config{Dir: ctrDir, CNIConfDir: *cniConfDir, Logger: cfg.Logger})
			if err != nil {
				return err
			}
			*endpoint = proc.Endpoint()
			return nil
		},
		Stop: func() { proc.Stop() }}}
	if cfg.ImagesDir != "" {
		cs = append(cs, lifecycle.Component{Name: "import-images", Start: func(ctx context.Context) error {
			var err error
			*pinnedImages, err = importImages(ctx, proc.Socket(), cfg.ImagesDir, cfg.Logger)
			return err
		}})
	}
	return cs
}

// proxyComponent runs the service proxy. Its failure is logged, not fatal:
// the node runs pods without Service routing.
func proxyComponent(client kubernetes.Interface, cfg AgentConfig) lifecycle.Component {
	var p *proxy.Proxier
	return lifecycle.Component{Name: "proxy",
		Start: func(context.Context) error {
			var err error
			p, err = proxy.New(proxy.Config{Client: client, NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR,
				Registerer: cfg.NodeMetrics, Logger: cfg.Logger})
			return err
		},
		Run: func(ctx context.Context) error {
			if err := p.Run(ctx); err != nil {
				cfg.Logger.Error("service proxy stopped", "err", err)
			}
			return nil
		},
		Stop: func() {
			// The kubelet, stopped before, took the pods with it unless
			// kept: so must the rules that lead to them go, or the next
			// cluster on this host inherits dead routes.
			if cfg.KeepContainers {
				return
			}
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := proxy.Cleanup(cctx, nil); err != nil {
				cfg.Logger.Warn("remove service rules", "err", err)
			}
		}}
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

// ingressComponent serves Ingresses on the node IP; like DNS, a failure
// to bind is logged and the node runs on.
func ingressComponent(client kubernetes.Interface, cfg AgentConfig) lifecycle.Component {
	var c *ingress.Controller
	return lifecycle.Component{Name: "ingress",
		Start: func(context.Context) error {
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
			var err error
			c, err = ingress.New(ingress.Config{Client: client, Logger: cfg.Logger,
				HTTPAddr:  net.JoinHostPort(ip.String(), strconv.Itoa(httpPort)),
				HTTPSAddr: net.JoinHostPort(ip.String(), strconv.Itoa(httpsPort))})
			if err != nil {
				cfg.Logger.Warn("ingress controller not started", "err", err)
				c = nil
			}
			return nil
		},
		Run: func(ctx context.Context) error {
			if c == nil {
				return nil
			}
			if err := c.Run(ctx); err != nil {
				cfg.Logger.Warn("ingress controller not serving", "err", err)
			}
			return nil
		}}
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
