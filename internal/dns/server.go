// Package dns is Skiff's cluster DNS: it answers
// <service>.<namespace>.svc.<domain>, headless and stateful pod names, SRV
// and PTR records from an informer cache, per the Kubernetes DNS
// specification, and forwards everything else to the node's resolvers
// with a small cache.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Config configures a DNS server.
type Config struct {
	Client kubernetes.Interface
	// Addr is where to listen (UDP and TCP), e.g. "192.0.2.2:53".
	Addr string
	// Domain is the cluster domain (default cluster.local).
	Domain string
	// Upstreams are resolvers for names outside the cluster, host:port;
	// empty reads /etc/resolv.conf.
	Upstreams []string
	// TTL of cluster answers in seconds (default 5, as CoreDNS).
	TTL        uint32
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Server is a running cluster DNS server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	factory informers.SharedInformerFactory
	records *records
	fwd     *forwarder
	metrics *metrics
	udp     *dns.Server
	tcp     *dns.Server
	addr    net.Addr
	wg      sync.WaitGroup
}

// Start loads the caches, binds the address and serves until ctx ends;
// Wait returns once everything has stopped.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Client == nil || cfg.Addr == "" {
		return nil, errors.New("dns: Client and Addr are required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "cluster.local"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.Upstreams) == 0 {
		cfg.Upstreams = hostResolvers("/etc/resolv.conf")
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "dns"),
		factory: informers.NewSharedInformerFactory(cfg.Client, 0),
		metrics: newMetrics(cfg.Registerer, cfg.Addr),
	}
	s.records = newRecords(dns.Fqdn(strings.ToLower(cfg.Domain)), cfg.TTL)
	s.fwd = newForwarder(cfg.Upstreams, 10000)
	svcInf := s.factory.Core().V1().Services().Informer()
	sliceInf := s.factory.Discovery().V1().EndpointSlices().Informer()
	for _, inf := range []cache.SharedIndexInformer{svcInf, sliceInf} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.records.markDirty() },
			UpdateFunc: func(any, any) { s.records.markDirty() },
			DeleteFunc: func(any) { s.records.markDirty() },
		}); err != nil {
			return nil, err
		}
	}
	s.records.services = s.factory.Core().V1().Services().Lister()
	s.records.slices = s.factory.Discovery().V1().EndpointSlices().Lister()
	// Listen before starting the informers: a port in use then fails fast
	// with nothing to stop (Shutdown would wait for informers that only
	// end with ctx).
	pc, ln, err := listenUDPAndTCP(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.factory.Start(ctx.Done())
	s.factory.WaitForCacheSync(ctx.Done())
	s.addr = pc.LocalAddr()
	handler := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: handler}
	s.tcp = &dns.Server{Listener: ln, Handler: handler}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func(srv *dns.Server) {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
				s.log.Error("dns server stopped", "err", err)
			}
		}(srv)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
		s.factory.Shutdown()
	}()
	s.log.Info("cluster DNS serving", "addr", s.addr.String(), "domain", cfg.Domain, "upstreams", cfg.Upstreams)
	return s, nil
}

// Addr is the bound UDP address.
func (s *Server) Addr() net.Addr { return s.addr }

// Wait blocks until the server has stopped after its context ended.
func (s *Server) Wait() { s.wg.Wait() }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	resp := s.answer(req, w.RemoteAddr().Network() == "tcp")
	if resp == nil {
		resp = new(dns.Msg)
		resp.SetRcode(req, dns.RcodeServerFailure)
	}
	// Counted before the answer leaves, so a client that has its answer
	// also sees it counted.
	s.metrics.observe(w.RemoteAddr(), req, resp, start)
	_ = w.WriteMsg(resp)
}

// answer resolves one query: cluster names from the records, the rest
// from the cache or the upstream resolvers.
func (s *Server) answer(req *dns.Msg, tcp bool) *dns.Msg {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if s.records.authoritative(name) {
		return s.records.answer(req, name, q.Qtype)
	}
	if m, ok := s.fwd.cached(req); ok {
		s.metrics.cache.WithLabelValues("hit").Inc()
		return m
	}
	s.metrics.cache.WithLabelValues("miss").Inc()
	m, err := s.fwd.forward(req, tcp)
	if err != nil {
		s.log.Debug("forward", "name", q.Name, "err", err)
		return nil
	}
	return m
}

// listenUDPAndTCP listens on addr over UDP and TCP, on one port. An
// ephemeral port (":0") is picked by the UDP listen; when that port is
// taken over TCP, another is tried.
func listenUDPAndTCP(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen %s: %w", addr, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || attempt == 10 {
			return nil, nil, fmt.Errorf("dns: listen %s/tcp: %w", addr, err)
		}
	}
}
