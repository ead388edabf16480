package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/controllers/manager"
	"github.com/skiff-dev/skiff/internal/leaderelect"
	"github.com/skiff-dev/skiff/internal/lifecycle"
	"github.com/skiff-dev/skiff/internal/metricshttp"
	"github.com/skiff-dev/skiff/internal/scheduler"
	"github.com/skiff-dev/skiff/internal/snapshot"
	"github.com/skiff-dev/skiff/internal/storage"
	"github.com/skiff-dev/skiff/internal/storage/encryption"
)

// serverParts holds what StartServer's components hand on to later ones:
// each field is set by the Start of the component that makes it.
type serverParts struct {
	s     *Server
	cfg   ServerConfig
	begun time.Time

	// From the configuration, before anything starts.
	host        string // the bind address, or loopback for every interface
	serviceCIDR *net.IPNet
	nodePorts   apiserver.PortRange
	advertise   net.IP
	enc         *encryption.Config // nil: nothing is encrypted at rest

	port      int
	saTokens  *apiserver.ServiceAccountTokens
	store     *storage.Store
	snapshots *snapshot.Scheduler
	metrics   *metricsGatherers
}

// newServerParts checks the configuration; nothing runs yet.
func newServerParts(s *Server, cfg ServerConfig) (*serverParts, error) {
	p := &serverParts{s: s, cfg: cfg, begun: time.Now(), host: cfg.BindAddress}
	if ip := net.ParseIP(p.host); ip != nil && ip.IsUnspecified() {
		p.host = "127.0.0.1"
	}
	var err error
	_, p.serviceCIDR, err = net.ParseCIDR(cfg.ServiceCIDR)
	if err != nil || p.serviceCIDR.IP.To4() == nil {
		return nil, fmt.Errorf("invalid service cluster IP range %q: want an IPv4 CIDR", cfg.ServiceCIDR)
	}
	if p.nodePorts, err = parsePortRange(cfg.NodePortRange); err != nil {
		return nil, err
	}
	if p.advertise, err = advertiseAddress(cfg.AdvertiseAddress, cfg.BindAddress); err != nil {
		return nil, err
	}
	if cfg.EncryptionProviderConfig != "" {
		if p.enc, err = encryption.Load(cfg.EncryptionProviderConfig); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// listen opens the API server's sockets first: with --secure-port 0 the
// kernel picks the port, and the serving certificate and kubeconfig need
// the final address. Pods reach the server through the kubernetes
// Service, whose endpoint is the advertise address: it listens there too
// when bound elsewhere.
func (p *serverParts) listen() lifecycle.Component {
	s := p.s
	return lifecycle.Component{Name: "listen",
		Start: func(context.Context) error {
			ln, err := net.Listen("tcp", net.JoinHostPort(p.cfg.BindAddress, strconv.Itoa(p.cfg.SecurePort)))
			if err != nil {
				return err
			}
			p.port = ln.Addr().(*net.TCPAddr).Port
			if extra := podListenAddress(p.cfg.BindAddress, p.advertise, p.port); extra != "" {
				pln, err := net.Listen("tcp", extra)
				if err != nil {
					ln.Close()
					return fmt.Errorf("listen on the advertise address %s for pods: %w", extra, err)
				}
				s.podListener = pln
			}
			s.listener = ln
			s.URL = "https://" + net.JoinHostPort(p.host, strconv.Itoa(p.port))
			return nil
		},
		// Serving closes them on the way out; this covers a start that
		// failed before serving began.
		Stop: func() {
			s.listener.Close()
			if s.podListener != nil {
				s.podListener.Close()
			}
		}}
}

// credentials ensures the cluster's PKI and ServiceAccount signing key and
// writes the admin kubeconfig.
func (p *serverParts) credentials() lifecycle.Component {
	s := p.s
	return lifecycle.Component{Name: "credentials", Start: func(context.Context) error {
		firstIP := apiserver.FirstServiceIP(p.serviceCIDR).String()
		hosts := append(servingHosts(p.cfg.BindAddress, p.host, firstIP), p.advertise.String())
		bundle, err := pki.Ensure(filepath.Join(p.cfg.DataDir, "pki"), pki.Options{Hosts: hosts})
		if err != nil {
			return err
		}
		s.pki = bundle
		if p.saTokens, err = serviceAccountTokens(p.cfg); err != nil {
			return err
		}
		s.Kubeconfig = filepath.Join(p.cfg.DataDir, "admin.kubeconfig")
		return pki.WriteKubeconfig(s.Kubeconfig, s.URL, bundle.CAPEM, bundle.AdminCertPEM, bundle.AdminKeyPEM, "admin")
	}}
}

// storage starts embedded etcd, or connects to the external servers. It
// stops last, once every in-process client has ended.
func (p *serverParts) storage() lifecycle.Component {
	s, cfg := p.s, p.cfg
	return lifecycle.Component{Name: "storage",
		Start: func(ctx context.Context) error {
			if len(cfg.EtcdServers) == 0 {
				e, err := storage.StartEmbedded(ctx, filepath.Join(cfg.DataDir, "etcd"))
				if err != nil {
					return err
				}
				s.etcd, s.client = e, e.Client
			} else {
				c, err := storage.ConnectExternal(cfg.EtcdServers, storage.TLSFiles{
					CAFile: cfg.EtcdCAFile, CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile})
				if err != nil {
					return err
				}
				s.client = c
			}
			// Checked here so that a bad schedule fails before the API
			// server starts; Stop does not run after a failed Start.
			snapshots, err := snapshotScheduler(cfg, s.client)
			if err != nil {
				s.closeStorage()
				return err
			}
			p.snapshots = snapshots
			p.store = storage.NewStore(s.client, storage.WithEncryption(p.enc))
			cfg.Logger.Debug("storage ready", "elapsed", time.Since(p.begun))
			return nil
		},
		Stop: func() {
			s.components.Wait()
			s.closeStorage()
		}}
}

// apiServer builds the API server, then runs it and serves it on the
// listeners until stopped.
func (p *serverParts) apiServer() lifecycle.Component {
	s, cfg := p.s, p.cfg
	return lifecycle.Component{Name: "api-server",
		Start: func(ctx context.Context) error {
			resources := apis.All()
			oapi, err := openapi.New(openapiInfo(resources), KubernetesVersion)
			if err != nil {
				return err
			}
			p.metrics = newMetricsGatherers(prometheus.DefaultGatherer)
			extra := http.NewServeMux()
			if err := oapi.Install(extra); err != nil {
				return err
			}
			kubeletTLS, err := kubeletClientTLS(s.pki)
			if err != nil {
				return err
			}
			bundle := s.pki
			s.api, err = apiserver.New(apiserver.Config{
				KubeletTLS:       kubeletTLS,
				BootstrapTokens:  true,
				KubeletTransport: kubeletTransport(kubeletTLS),
				Store:            p.store,
				Resources:        resources,
				Authenticator:    authn.NewClientCert(bundle.CAPool),
				AccessControl:    true,
				GitVersion:       KubernetesVersion + "+skiff",
				ServiceCIDR:      p.serviceCIDR,
				NodePorts:        p.nodePorts,
				PublicAddress:    p.advertise,
				PublicPort:       p.port,
				Logger:           cfg.Logger,
				ExtraHandlers: map[string]http.Handler{
					"/openapi/": extra,
					"/metrics":  metricshttp.Handler(p.metrics),
				},
				ServiceAccountTokens: p.saTokens,
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
				return err
			}
			p.metrics.add(s.api.Metrics()) // apiserver_*, etcd_request_duration_seconds
			s.http = &http.Server{
				Handler:   s.api,
				TLSConfig: pki.ServerTLSConfig(bundle),
				// As upstream's secure serving: headers within 32 s, idle
				// keep-alive connections closed after 90 s, 1 MiB of headers.
				ReadHeaderTimeout: 32 * time.Second,
				IdleTimeout:       90 * time.Second,
				MaxHeaderBytes:    1 << 20,
				ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
				// Requests outlive the server's context so that those made
				// while shutting down (components releasing their leases)
				// complete.
				BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
				// Informers and kubectl multiplex many watches over one connection.
				HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000},
			}
			return nil
		},
		Run: func(ctx context.Context) error {
			var wg sync.WaitGroup
			wg.Go(func() { p.store.RunCompactor(ctx, 5*time.Minute, cfg.Logger) })
			for _, l := range []net.Listener{s.listener, s.podListener} {
				if l == nil {
					continue
				}
				wg.Go(func() {
					err := s.http.ServeTLS(l, "", "")
					if err != nil && !errors.Is(err, http.ErrServerClosed) {
						cfg.Logger.Error("API server stopped", "addr", l.Addr().String(), "err", err)
					}
				})
			}
			wg.Go(func() {
				<-ctx.Done()
				p.shutdownHTTP()
			})
			s.api.Run(ctx)
			wg.Wait()
			return nil
		}}
}

// shutdownHTTP stops serving. The in-process components have been stopped
// before; the goroutines of those that the Server's helpers start are
// given a moment to finish, as they release their leader leases through
// this server, so that a restarted server schedules and reconciles at
// once instead of waiting for the leases to expire.
func (p *serverParts) shutdownHTTP() {
	stopped := make(chan struct{})
	go func() { p.s.components.Wait(); close(stopped) }()
	t := time.NewTimer(5 * time.Second)
	select {
	case <-stopped:
	case <-t.C:
	}
	t.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.s.http.Shutdown(ctx)
}

// loop is a component that runs f until stopped.
func loop(name string, f func(context.Context)) lifecycle.Component {
	return lifecycle.Component{Name: name, Run: func(ctx context.Context) error { f(ctx); return nil }}
}

// controllerManager runs the controllers in process, as kubeadm's: with
// its own identity, and each controller its own ServiceAccount's.
func (p *serverParts) controllerManager() lifecycle.Component {
	s, cfg := p.s, p.cfg
	var mc manager.Config
	return lifecycle.Component{Name: "controller-manager",
		Start: func(context.Context) error {
			rc, err := s.componentConfig(cfg.DataDir, "controller-manager.kubeconfig", controllerManagerUser)
			if err != nil {
				return err
			}
			mc = manager.Config{RESTConfig: rc, LeaderElect: true, ClusterCIDR: cfg.ClusterCIDR,
				RootCA: s.pki.CAPEM, UseServiceAccountCredentials: true, Local: s.api, Logger: cfg.Logger.With("component", "controller-manager")}
			return nil
		},
		Run: func(ctx context.Context) error {
			s.controllers.run(func() {
				if err := manager.Run(ctx, mc); err != nil {
					cfg.Logger.Error("controller manager", "err", err)
				}
			})
			return nil
		}}
}

// scheduler runs the scheduler in process, under leader election.
func (p *serverParts) scheduler() lifecycle.Component {
	s, cfg := p.s, p.cfg
	var client kubernetes.Interface
	var sched *scheduler.Scheduler
	return lifecycle.Component{Name: "scheduler",
		Start: func(context.Context) error {
			rc, err := s.componentConfig(cfg.DataDir, "scheduler.kubeconfig", schedulerUser)
			if err != nil {
				return err
			}
			if client, err = kubernetes.NewForConfig(rc); err != nil {
				return err
			}
			sched = scheduler.New(scheduler.Config{Client: client, Local: s.api, Logger: cfg.Logger.With("component", "scheduler")})
			p.metrics.add(sched.Registry())
			return nil
		},
		Run: func(ctx context.Context) error {
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
			return nil
		},
		Stop: func() { sched.Close() },
	}
}
