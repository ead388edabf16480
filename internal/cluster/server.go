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
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/crash"
	"github.com/skiff-dev/skiff/internal/kubelet"
	"github.com/skiff-dev/skiff/internal/lifecycle"
	"github.com/skiff-dev/skiff/internal/storage"
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
	done        chan struct{} // closed once every component has stopped
	// components counts the goroutines that the CSR signer, tokens
	// controller and dashboard helpers start; they end with their ctx.
	components sync.WaitGroup
	pki        *pki.Bundle
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

// StartServer runs the control plane as a lifecycle.Group started in this
// order: the listeners, the PKI and admin kubeconfig, storage (etcd), the
// API server, its watch caches and bootstrap objects, its endpoint and
// Service IP loops, cluster-info, the CSR signer, the tokens controller,
// the controller manager, the scheduler, etcd snapshots and the dashboard.
// It returns once the API server answers /readyz, or with the error of the
// step that failed, everything started before it stopped again. Stop it by
// cancelling ctx and calling Wait: the steps stop in reverse order, the
// in-process components first and storage last.
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	// A panic in one loop is logged and counted, not fatal.
	crash.InstallClientGoHandler()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BindAddress == "" {
		cfg.BindAddress = "127.0.0.1"
	}
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = defaultServiceCIDR
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s := &Server{cfg: cfg, done: make(chan struct{})}
	p, err := newServerParts(s, cfg)
	if err != nil {
		return nil, err
	}

	var g lifecycle.Group
	g.Logger = cfg.Logger
	g.Add(p.listen(), p.credentials(), p.storage(), p.apiServer(),
		lifecycle.Component{Name: "watch-caches", Start: func(ctx context.Context) error {
			if err := s.api.WaitReady(ctx); err != nil {
				return err
			}
			cfg.Logger.Debug("watch caches loaded", "elapsed", time.Since(p.begun))
			return nil
		}},
		lifecycle.Component{Name: "bootstrap", Start: func(ctx context.Context) error { return s.api.Bootstrap(ctx) }},
		loop("endpoint-reconciler", func(ctx context.Context) { s.api.RunEndpointReconciler(ctx) }),
		loop("service-ip-repair", func(ctx context.Context) { s.api.RunServiceIPRepair(ctx) }),
		lifecycle.Component{Name: "cluster-info", Start: s.publishClusterInfo},
		// These helpers' goroutines end with their ctx; the API server
		// waits for them (s.components) before it stops serving.
		lifecycle.Component{Name: "csr-signer", Start: s.startCSRSigner},
	)
	if !cfg.DisableControllers {
		g.Add(lifecycle.Component{Name: "tokens-controller", Start: func(ctx context.Context) error {
			return s.startTokensController(ctx, p.saTokens.Issuer)
		}}, p.controllerManager())
	}
	if !cfg.DisableScheduler {
		g.Add(p.scheduler())
	}
	if cfg.EtcdSnapshotSchedule != "" {
		g.Add(loop("etcd-snapshots", func(ctx context.Context) { p.snapshots.Run(ctx) }))
	}
	if cfg.DashboardPort != 0 {
		g.Add(lifecycle.Component{Name: "dashboard", Start: func(ctx context.Context) error {
			s.startDashboard(ctx, cfg)
			return nil
		}})
	}
	ready := make(chan struct{})
	g.Add(lifecycle.Component{Name: "ready", Start: func(context.Context) error {
		s.api.MarkReady()
		close(ready)
		return nil
	}})

	failed := make(chan error, 1)
	go func() {
		defer close(s.done)
		err := g.Run(ctx)
		select {
		case <-ready:
			if err != nil {
				cfg.Logger.Error("server stopped", "err", err)
			}
		default:
			failed <- err
		}
	}()
	select {
	case <-ready:
	case err := <-failed:
		// Ended before ready: by ctx between two steps, Run returns nil.
		if err == nil {
			err = fmt.Errorf("server stopped before it was ready: %w", context.Cause(ctx))
		}
		return nil, err
	}
	cfg.Logger.Info("API server ready", "url", s.URL, "kubeconfig", s.Kubeconfig, "elapsed", time.Since(p.begun).Round(time.Millisecond))
	return s, nil
}

// Wait blocks until the server has shut down after its context ended,
// etcd included.
func (s *Server) Wait() {
	<-s.done
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
