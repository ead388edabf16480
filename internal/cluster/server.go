// Package cluster assembles Skiff's components into the processes the
// skiff binary runs: server (etcd + API server), and later agent and up.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/controllers/manager"
	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/kubelet"
	"github.com/skiff-dev/skiff/internal/leaderelect"
	"github.com/skiff-dev/skiff/internal/metricshttp"
	"github.com/skiff-dev/skiff/internal/scheduler"
	"github.com/skiff-dev/skiff/internal/storage"
	"github.com/skiff-dev/skiff/internal/storage/encryption"
)

// KubernetesVersion is the version of the Kubernetes API types served; it is
// what /version reports, with a +skiff suffix.
const KubernetesVersion = "v1.37.2"

const defaultServiceCIDR = "10.96.0.0/12"

// ServerConfig configures `skiff server`.
type ServerConfig struct {
	DataDir     string
	BindAddress string
	SecurePort  int
	// EtcdServers selects an external etcd cluster; empty runs etcd embedded.
	EtcdServers []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile secure the connection to
	// external etcd servers (kube-apiserver's --etcd-cafile etc.).
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EncryptionProviderConfig is the path of an EncryptionConfiguration
	// file; values of the resources it names are encrypted at rest.
	EncryptionProviderConfig string
	// ServiceCIDR is the range of Service cluster IPs (default 10.96.0.0/12).
	ServiceCIDR string
	// NodePortRange is "base-last" (default 30000-32767).
	NodePortRange string
	// DisableScheduler leaves pod placement to an external scheduler.
	DisableScheduler bool
	// DisableControllers leaves reconciliation to an external controller manager.
	DisableControllers bool
	// ClusterCIDR is the pod network; nodes get /24 pod CIDRs from it.
	ClusterCIDR string
	// AdvertiseAddress is where pods reach this server: the endpoint of the
	// default/kubernetes Service. Empty means the bind address, or, when
	// that is loopback or every interface, the address a node agent on
	// this machine would use.
	AdvertiseAddress string
	// ServiceAccountIssuer is the "iss" of ServiceAccount tokens (default
	// https://kubernetes.default.svc).
	ServiceAccountIssuer string
	// ServiceAccountMaxTokenExpiration caps TokenRequest lifetimes (0: none).
	ServiceAccountMaxTokenExpiration time.Duration
	// ServiceAccountExtendTokenExpiration gives the kubelet's pod tokens a
	// year of validity with a refresh warning, as upstream's default.
	ServiceAccountExtendTokenExpiration bool
	// ClusterSigningDuration caps the lifetime of certificates the cluster
	// CA signs for CSRs (0: one year, upstream's default).
	ClusterSigningDuration time.Duration
	// EtcdSnapshotSchedule is the cron schedule of etcd snapshots (empty:
	// none), kept EtcdSnapshotRetention deep in EtcdSnapshotDir (default
	// DIR/snapshots).
	EtcdSnapshotSchedule  string
	EtcdSnapshotRetention int
	EtcdSnapshotDir       string
	// FlowControl is API Priority and Fairness (--enable-priority-and-fairness,
	// --max-requests-inflight, --max-mutating-requests-inflight).
	FlowControl apiserver.FlowControlConfig
	// DashboardPort serves the web dashboard on the bind address (0: off);
	// DashboardWritable lets it pass more than GET requests.
	DashboardPort     int
	DashboardWritable bool
	Logger            *slog.Logger
}

// Server is a running control plane.
type Server struct {
	cfg        ServerConfig
	URL        string // https://host:port
	Kubeconfig string // path of the admin kubeconfig
	listener   net.Listener
	// podListener serves the advertise address when the server is bound to
	// another one (loopback by default).
	podListener net.Listener
	http        *http.Server
	etcd        *storage.Embedded
	client      *clientv3.Client
	api         *apiserver.Server
	done        chan struct{}
	components  sync.WaitGroup // in-process clients of the API server
	pki         *pki.Bundle
	// scheduler and controllers say whether those components still run,
	// for componentstatuses.
	scheduler, controllers inProcess

	// DashboardURL is where the web dashboard answers ("" when off).
	DashboardURL string
}

// RESTConfig returns the admin user's client configuration, without a
// client-side rate limit (in-process components are trusted).
func (s *Server) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", s.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	return cfg, nil
}

// Client returns a clientset for the admin user.
func (s *Server) Client() (kubernetes.Interface, error) {
	cfg, err := s.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// StartServer brings up etcd and the API server and returns once the API
// server answers /readyz. Stop it by cancelling ctx and calling Wait.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	// A panic in one loop is logged and counted, not fatal.
	crash.InstallClientGoHandler()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BindAddress == "" {
		cfg.BindAddress = "127.0.0.1"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	start := time.Now()
	s := &Server{cfg: cfg, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.closeStorage()
			if s.podListener != nil {
				s.podListener.Close()
			}
		}
	}()

	// Listen first: with --secure-port 0 the kernel picks the port, and the
	// serving certificate and kubeconfig need the final address.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.SecurePort)))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.listener = ln
	host := cfg.BindAddress
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	port := ln.Addr().(*net.TCPAddr).Port
	s.URL = "https://" + net.JoinHostPort(host, strconv.Itoa(port))

	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = defaultServiceCIDR
	}
	_, serviceCIDR, err := net.ParseCIDR(cfg.ServiceCIDR)
	if err != nil || serviceCIDR.IP.To4() == nil {
		ln.Close()
		return nil, fmt.Errorf("invalid service cluster IP range %q: want an IPv4 CIDR", cfg.ServiceCIDR)
	}
	nodePorts, err := parsePortRange(cfg.NodePortRange)
	if err != nil {
		ln.Close()
		return nil, err
	}
	firstIP := apiserver.FirstServiceIP(serviceCIDR).String()
	advertise, err := advertiseAddress(cfg.AdvertiseAddress, cfg.BindAddress)
	if err != nil {
		ln.Close()
		return nil, err
	}
	bundle, err := pki.Ensure(filepath.Join(cfg.DataDir, "pki"), pki.Options{Hosts: append(servingHosts(cfg.BindAddress, host, firstIP), advertise.String())})
	if err != nil {
		ln.Close()
		return nil, err
	}
	// Pods reach the server through the kubernetes Service, whose endpoint
	// is the advertise address: listen there too when bound elsewhere.
	if extra := podListenAddress(cfg.BindAddress, advertise, port); extra != "" {
		pln, err := net.Listen("tcp", extra)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on the advertise address %s for pods: %w", extra, err)
		}
		s.podListener = pln
	}
	s.pki = bundle
	saTokens, err := serviceAccountTokens(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.Kubeconfig = filepath.Join(cfg.DataDir, "admin.kubeconfig")
	if err := pki.WriteKubeconfig(s.Kubeconfig, s.URL, bundle.CAPEM, bundle.AdminCertPEM, bundle.AdminKeyPEM, "admin"); err != nil {
		ln.Close()
		return nil, err
	}

	var enc *encryption.Config // nil: nothing is encrypted at rest
	if cfg.EncryptionProviderConfig != "" {
		if enc, err = encryption.Load(cfg.EncryptionProviderConfig); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if len(cfg.EtcdServers) == 0 {
		s.etcd, err = storage.StartEmbedded(ctx, filepath.Join(cfg.DataDir, "etcd"))
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.client = s.etcd.Client
	} else {
		s.client, err = storage.ConnectExternal(cfg.EtcdServers, storage.TLSFiles{
			CAFile: cfg.EtcdCAFile, CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile})
		if err != nil {
			ln.Close()
			return nil, err
		}
	}
	snapshots, err := snapshotScheduler(cfg, s.client)
	if err != nil {
		ln.Close()
		return nil, err
	}
	store := storage.NewStore(s.client, storage.WithEncryption(enc))
	cfg.Logger.Debug("storage ready", "elapsed", time.Since(start))

	resources := apis.All()
	oapi, err := openapi.New(openapiInfo(resources), KubernetesVersion)
	if err != nil {
		ln.Close()
		return nil, err
	}
	metrics := newMetricsGatherers(prometheus.DefaultGatherer)
	var sched *scheduler.Scheduler
	extra := http.NewServeMux()
	if err := oapi.Install(extra); err != nil {
		ln.Close()
		return nil, err
	}
	kubeletTLS, err := kubeletClientTLS(bundle)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.api, err = apiserver.New(apiserver.Config{
		KubeletTLS:       kubeletTLS,
		BootstrapTokens:  true,
		KubeletTransport: kubeletTransport(kubeletTLS),
		Store:            store,
		Resources:        resources,
		Authenticator:    authn.NewClientCert(bundle.CAPool),
		AccessControl:    true,
		GitVersion:       KubernetesVersion + "+skiff",
		ServiceCIDR:      serviceCIDR,
		NodePorts:        nodePorts,
		PublicAddress:    advertise,
		PublicPort:       port,
		Logger:           cfg.Logger,
		ExtraHandlers: map[string]http.Handler{
			"/openapi/": extra,
			"/metrics":  metricshttp.Handler(metrics),
		},
		ServiceAccountTokens: saTokens,
		FlowControl:          cfg.FlowControl,
		// The OpenAPI documents follow the served custom resources.
		CustomResourceOpenAPI: oapi,
		Aggregation: apiserver.AggregationConfig{
			ProxyClient: &bundle.FrontProxyClient, ProxyClientName: pki.FrontProxyClientName,
			RequestHeaderCAPEM: bundle.FrontProxyCAPEM, ClientCAPEM: bundle.CAPEM,
		},
		Components: componentChecks(cfg, &s.scheduler, &s.controllers),
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	metrics.add(s.api.Metrics()) // apiserver_*, etcd_request_duration_seconds

	tlsCfg := pki.ServerTLSConfig(bundle)
	s.http = &http.Server{
		Handler:   s.api,
		TLSConfig: tlsCfg,
		// As upstream's secure serving: headers within 32 s, idle
		// keep-alive connections closed after 90 s, 1 MiB of headers.
		ReadHeaderTimeout: 32 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		// Requests outlive the server's context so that those made while
		// shutting down (components releasing their leases) complete.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		// Informers and kubectl multiplex many watches over one connection.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000},
	}
	go func() {
		defer close(s.done)
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go store.RunCompactor(runCtx, 5*time.Minute, cfg.Logger)
		go func() {
			<-runCtx.Done()
			// Let the in-process components stop first: they release their
			// leader leases through this server, so that a restarted
			// server schedules and reconciles at once instead of waiting
			// for the leases to expire.
			stopped := make(chan struct{})
			go func() { s.components.Wait(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(5 * time.Second):
			}
			shutdownCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			_ = s.http.Shutdown(shutdownCtx)
		}()
		s.api.Run(runCtx)
	}()
	for _, l := range []net.Listener{ln, s.podListener} {
		if l == nil {
			continue
		}
		go func() {
			err := s.http.ServeTLS(l, "", "")
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				cfg.Logger.Error("API server stopped", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	if err := s.api.WaitReady(ctx); err != nil {
		return nil, err
	}
	cfg.Logger.Debug("watch caches loaded", "elapsed", time.Since(start))
	if err := s.api.Bootstrap(ctx); err != nil {
		return nil, err
	}
	s.components.Add(1)
	go func() {
		defer s.components.Done()
		s.api.RunEndpointReconciler(ctx)
	}()
	s.components.Add(1)
	go func() {
		defer s.components.Done()
		s.api.RunServiceIPRepair(ctx)
	}()
	if err := s.publishClusterInfo(ctx); err != nil {
		return nil, err
	}
	if err := s.startCSRSigner(ctx); err != nil {
		return nil, err
	}
	if err := s.startTokensController(ctx, saTokens.Issuer); err != nil {
		return nil, err
	}
	if !cfg.DisableControllers {
		// As kubeadm's: its own identity, and each controller its own
		// ServiceAccount's.
		rc, err := s.componentConfig(cfg.DataDir, "controller-manager.kubeconfig", controllerManagerUser)
		if err != nil {
			return nil, err
		}
		s.components.Add(1)
		go func() {
			defer s.components.Done()
			s.controllers.run(func() {
				err := manager.Run(ctx, manager.Config{RESTConfig: rc, LeaderElect: true, ClusterCIDR: cfg.ClusterCIDR,
					RootCA: s.pki.CAPEM, UseServiceAccountCredentials: true, Logger: cfg.Logger.With("component", "controller-manager")})
				if err != nil {
					cfg.Logger.Error("controller manager", "err", err)
				}
			})
		}()
	}
	if !cfg.DisableScheduler {
		rc, err := s.componentConfig(cfg.DataDir, "scheduler.kubeconfig", schedulerUser)
		if err != nil {
			return nil, err
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, err
		}
		sched = scheduler.New(scheduler.Config{Client: client, Logger: cfg.Logger.With("component", "scheduler")})
		metrics.add(sched.Registry())
		s.components.Add(1)
		go func() {
			defer s.components.Done()
			s.scheduler.run(func() {
				err := leaderelect.Run(ctx, client, "kube-scheduler", cfg.Logger, func(ctx context.Context) {
					if err := sched.Run(ctx); err != nil {
						cfg.Logger.Error("scheduler stopped", "err", err)
					}
				})
				if err != nil {
					cfg.Logger.Error("scheduler leader election", "err", err)
				}
			})
		}()
	}
	if snapshots != nil {
		s.components.Add(1)
		go func() {
			defer s.components.Done()
			snapshots.Run(ctx)
		}()
	}
	if cfg.DashboardPort != 0 {
		s.startDashboard(ctx, cfg)
	}
	s.api.MarkReady()
	ok = true
	cfg.Logger.Info("API server ready", "url", s.URL, "kubeconfig", s.Kubeconfig, "elapsed", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// Wait blocks until the server has shut down after its context ended,
// and releases etcd.
func (s *Server) Wait() {
	s.components.Wait()
	<-s.done
	s.closeStorage()
}

func (s *Server) closeStorage() {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	} else if s.client != nil {
		s.client.Close()
		s.client = nil
	}
}

// openapiInfo describes the served resources for the OpenAPI documents;
// create-only reviews get just their POST operation.
func openapiInfo(rs []*apis.Resource) []openapi.ResourceInfo {
	out := make([]openapi.ResourceInfo, 0, len(rs))
	for _, r := range rs {
		out = append(out, openapi.ResourceInfo{
			Group: r.GVR.Group, Version: r.GVR.Version, Resource: r.GVR.Resource,
			Kind: r.Kind, Namespaced: r.Namespaced, Subresources: r.Subresources,
			CreateOnly: r.CreateOnly, ReadOnly: r.Verbs != nil,
		})
	}
	return out
}

// parsePortRange parses "30000-32767"; empty means upstream's default.
func parsePortRange(s string) (apiserver.PortRange, error) {
	if s == "" {
		return apiserver.DefaultNodePortRange, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || a <= 0 || b < a || b > 65535 {
		return apiserver.PortRange{}, fmt.Errorf("invalid node port range %q: want BASE-LAST", s)
	}
	return apiserver.PortRange{Base: a, Size: b - a + 1}, nil
}

// kubeletClientTLS authenticates the API server to kubelets with a client
// certificate from the cluster CA and verifies their serving certificates
// against it.
func kubeletClientTLS(b *pki.Bundle) (*tls.Config, error) {
	certPEM, keyPEM, err := b.IssueClientCert("kube-apiserver-kubelet-client", []string{"system:masters"}, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	// Kubelets serve certificates from the cluster CA (issued directly by
	// `skiff up`, through a kubelet-serving CSR for joined agents), so the
	// API server verifies them, as upstream with
	// --kubelet-certificate-authority: logs, exec and node proxy never
	// reach an impostor with the server's credentials.
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: b.CAPool,
		VerifyConnection: verifyKubelet}, nil
}

// verifyKubelet accepts only kubelet serving certificates (CN
// system:node:<name>): a node controls the address and port the API server
// dials for it, and must not be able to point the server's own
// credentials at another server that holds a certificate from the same CA
// (the API server itself, at 127.0.0.1).
func verifyKubelet(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 || !strings.HasPrefix(cs.PeerCertificates[0].Subject.CommonName, "system:node:") {
		return errors.New("the peer's certificate is not a kubelet's (CN system:node:<name>)")
	}
	return nil
}

// kubeletTransport is HTTP/1.1 only: streams upgrade the connection.
func kubeletTransport(tlsConfig *tls.Config) http.RoundTripper {
	return &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// advertiseAddress picks the address pods reach this server at.
func advertiseAddress(flag, bind string) (net.IP, error) {
	if flag != "" {
		ip := net.ParseIP(flag)
		if ip == nil || ip.To4() == nil || ip.IsUnspecified() {
			return nil, fmt.Errorf("invalid advertise address %q: want an IPv4 address", flag)
		}
		return ip, nil
	}
	if ip := net.ParseIP(bind); ip != nil && !ip.IsLoopback() && !ip.IsUnspecified() {
		return ip, nil
	}
	return kubelet.DefaultNodeIP(), nil
}

// podListenAddress is the extra address to listen on so that pods reach
// the server: none when the bind address already covers the advertise one.
func podListenAddress(bind string, advertise net.IP, port int) string {
	ip := net.ParseIP(bind)
	if ip != nil && (ip.IsUnspecified() || ip.Equal(advertise)) || advertise.IsLoopback() {
		return ""
	}
	return net.JoinHostPort(advertise.String(), strconv.Itoa(port))
}

// servingHosts are the names the serving certificate covers: the bind
// address, and, when bound to every interface, each interface's address so
// nodes can join through any of them.
func servingHosts(bind, host, serviceIP string) []string {
	hosts := []string{bind, host, serviceIP}
	if ip := net.ParseIP(bind); ip == nil || !ip.IsUnspecified() {
		return hosts
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return hosts
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			hosts = append(hosts, n.IP.String())
		}
	}
	return hosts
}
