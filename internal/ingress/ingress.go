// Package ingress is Skiff's built-in ingress controller (class "skiff",
// the cluster default): every node serves HTTP and HTTPS and routes by
// Ingress host and path straight to the ready endpoints of the backend
// Service, with certificates from the Ingresses' TLS Secrets.
package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ClassName is the IngressClass this controller serves; the API server
// creates it as the default class.
const (
	ClassName      = "skiff"
	ControllerName = "skiff.io/ingress"
)

// Config configures the controller.
type Config struct {
	Client kubernetes.Interface
	// HTTPAddr and HTTPSAddr are where to listen, e.g. ":80" and ":443".
	HTTPAddr, HTTPSAddr string
	Logger              *slog.Logger
}

// Controller serves the cluster's Ingresses.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	factory informers.SharedInformerFactory
	table   atomic.Pointer[table]
	dirty   chan struct{}
	next    atomic.Uint64 // round-robin counter
}

// New prepares a controller; Run serves.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("ingress: Client is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{cfg: cfg, log: cfg.Logger.With("component", "ingress"),
		factory: informers.NewSharedInformerFactory(cfg.Client, 0), dirty: make(chan struct{}, 1)}
	c.table.Store(&table{})
	return c, nil
}

// Run serves until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	mark := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.markDirty() }, UpdateFunc: func(any, any) { c.markDirty() }, DeleteFunc: func(any) { c.markDirty() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		c.factory.Networking().V1().Ingresses().Informer(),
		c.factory.Networking().V1().IngressClasses().Informer(),
		c.factory.Core().V1().Services().Informer(),
		c.factory.Discovery().V1().EndpointSlices().Informer(),
	} {
		if _, err := inf.AddEventHandler(mark); err != nil {
			return err
		}
	}
	c.factory.Start(ctx.Done())
	c.factory.WaitForCacheSync(ctx.Done())
	defer c.factory.Shutdown()
	c.rebuild(ctx)

	handler := http.HandlerFunc(c.serveHTTP)
	servers := []*http.Server{}
	var wg sync.WaitGroup
	serve := func(addr string, tlsCfg *tls.Config) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("ingress: listen %s: %w", addr, err)
		}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				c.log.Error("ingress server stopped", "addr", addr, "err", err)
			}
		}()
		return nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.certificate, NextProtos: []string{"h2", "http/1.1"}}
	err := serve(c.cfg.HTTPAddr, nil)
	if err == nil {
		err = serve(c.cfg.HTTPSAddr, tlsCfg)
	}
	if err == nil {
		c.log.Info("ingress serving", "http", c.cfg.HTTPAddr, "https", c.cfg.HTTPSAddr)
		// TLS Secrets are read one by one (a node may read only the Secrets
		// that Ingresses name), so changes to them are picked up by a
		// periodic rebuild rather than a watch.
		refresh := time.NewTicker(secretRefresh)
		defer refresh.Stop()
		for {
			select {
			case <-ctx.Done():
			case <-refresh.C:
				c.rebuild(ctx)
				continue
			case <-c.dirty:
				// Coalesce bursts of changes.
				time.Sleep(50 * time.Millisecond)
				c.rebuild(ctx)
				continue
			}
			break
		}
	}
	for _, s := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(sctx)
		cancel()
	}
	wg.Wait()
	return err
}

func (c *Controller) markDirty() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

// table is an immutable snapshot of the routes and certificates.
type table struct {
	rules []rule                      // most specific first
	certs map[string]*tls.Certificate // by host; "*.example.com" for wildcards
	def   *backend                    // spec.defaultBackend of some Ingress
}

type rule struct {
	host     string // "" matches any host; "*.x" one label
	path     string
	pathType networkingv1.PathType
	backend  *backend
}

// backend is a service port resolved to its ready endpoints.
type backend struct {
	namespace, service string
	endpoints          []string // host:port
}

// secretRefresh is how often TLS Secrets are read again.
const secretRefresh = 30 * time.Second

func (c *Controller) rebuild(ctx context.Context) {
	t := &table{certs: map[string]*tls.Certificate{}}
	ings, _ := c.factory.Networking().V1().Ingresses().Lister().List(labels.Everything())
	sort.Slice(ings, func(i, j int) bool { return ings[i].CreationTimestamp.Before(&ings[j].CreationTimestamp) })
	for _, ing := range ings {
		if !c.ours(ing) {
			continue
		}
		for _, tl := range ing.Spec.TLS {
			getCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			sec, err := c.cfg.Client.CoreV1().Secrets(ing.Namespace).Get(getCtx, tl.SecretName, metav1.GetOptions{})
			cancel()
			if err != nil {
				c.log.Debug("ingress TLS secret", "ingress", ing.Namespace+"/"+ing.Name, "secret", tl.SecretName, "err", err)
				continue
			}
			cert, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
			if err != nil {
				c.log.Warn("ingress TLS secret", "ingress", ing.Namespace+"/"+ing.Name, "secret", tl.SecretName, "err", err)
				continue
			}
			for _, h := range tl.Hosts {
				if _, ok := t.certs[h]; !ok {
					t.certs[strings.ToLower(h)] = &cert
				}
			}
		}
		if ing.Spec.DefaultBackend != nil && ing.Spec.DefaultBackend.Service != nil && t.def == nil {
			t.def = c.resolve(ing.Namespace, ing.Spec.DefaultBackend.Service)
		}
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if p.Backend.Service == nil {
					continue
				}
				pt := networkingv1.PathTypeImplementationSpecific
				if p.PathType != nil {
					pt = *p.PathType
				}
				path := p.Path
				if path == "" {
					path = "/"
				}
				t.rules = append(t.rules, rule{host: strings.ToLower(r.Host), path: path, pathType: pt, backend: c.resolve(ing.Namespace, p.Backend.Service)})
			}
		}
	}
	// Exact hosts before wildcards before any host; Exact paths before
	// prefixes; longer prefixes first.
	sort.SliceStable(t.rules, func(i, j int) bool {
		a, b := t.rules[i], t.rules[j]
		if hostRank(a.host) != hostRank(b.host) {
			return hostRank(a.host) < hostRank(b.host)
		}
		if (a.pathType == networkingv1.PathTypeExact) != (b.pathType == networkingv1.PathTypeExact) {
			return a.pathType == networkingv1.PathTypeExact
		}
		return len(a.path) > len(b.path)
	})
	c.table.Store(t)
}

func hostRank(h string) int {
	switch {
	case h == "":
		return 2
	case strings.HasPrefix(h, "*."):
		return 1
	}
	return 0
}

// ours says whether an Ingress belongs to this controller: class skiff,
// or no class while skiff is the default.
func (c *Controller) ours(ing *networkingv1.Ingress) bool {
	name := ""
	if ing.Spec.IngressClassName != nil {
		name = *ing.Spec.IngressClassName
	} else if a := ing.Annotations["kubernetes.io/ingress.class"]; a != "" {
		name = a
	}
	if name == "" {
		cls, err := c.factory.Networking().V1().IngressClasses().Lister().Get(ClassName)
		return err == nil && cls.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true"
	}
	if name == ClassName {
		return true
	}
	cls, err := c.factory.Networking().V1().IngressClasses().Lister().Get(name)
	return err == nil && cls.Spec.Controller == ControllerName
}

// resolve finds the ready endpoints of a service port.
func (c *Controller) resolve(ns string, b *networkingv1.IngressServiceBackend) *backend {
	be := &backend{namespace: ns, service: b.Name}
	svc, err := c.factory.Core().V1().Services().Lister().Services(ns).Get(b.Name)
	if err != nil {
		return be
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if (b.Port.Name != "" && p.Name == b.Port.Name) || (b.Port.Number != 0 && p.Port == b.Port.Number) {
			sp = p
		}
	}
	if sp == nil {
		return be
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: b.Name})
	slices, _ := c.factory.Discovery().V1().EndpointSlices().Lister().EndpointSlices(ns).List(sel)
	for _, sl := range slices {
		port := int32(0)
		for _, p := range sl.Ports {
			if p.Port != nil && (p.Name == nil && sp.Name == "" || p.Name != nil && *p.Name == sp.Name) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range sl.Endpoints {
			if (e.Conditions.Ready == nil || *e.Conditions.Ready) && len(e.Addresses) > 0 {
				be.endpoints = append(be.endpoints, net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port))))
			}
		}
	}
	sort.Strings(be.endpoints)
	return be
}

// match finds the backend for a request's host and path.
func (t *table) match(host, path string) *backend {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	// As nginx's server blocks: the most specific host that has rules
	// (exact, then wildcard, then any) owns the request, and only its
	// paths are considered.
	owner, found := "", false
	for _, r := range t.rules {
		if hostMatches(r.host, host) {
			owner, found = r.host, true
			break
		}
	}
	if !found {
		return t.def
	}
	for _, r := range t.rules {
		if r.host != owner {
			continue
		}
		switch r.pathType {
		case networkingv1.PathTypeExact:
			if path == r.path {
				return r.backend
			}
		default: // Prefix, and ImplementationSpecific treated as Prefix
			if prefixMatches(r.path, path) {
				return r.backend
			}
		}
	}
	return t.def
}

func hostMatches(rule, host string) bool {
	switch {
	case rule == "":
		return true
	case strings.HasPrefix(rule, "*."):
		// A wildcard covers exactly one label.
		suffix := rule[1:]
		return strings.HasSuffix(host, suffix) && !strings.Contains(strings.TrimSuffix(host, suffix), ".")
	}
	return rule == host
}

// prefixMatches compares path elements: /foo matches /foo and /foo/bar,
// not /foobar.
func prefixMatches(prefix, path string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func (c *Controller) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	t := c.table.Load()
	name := strings.ToLower(hello.ServerName)
	if cert, ok := t.certs[name]; ok {
		return cert, nil
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if cert, ok := t.certs["*"+name[i:]]; ok {
			return cert, nil
		}
	}
	for _, cert := range t.certs {
		return cert, nil // no SNI match: any certificate beats none
	}
	return nil, errors.New("no certificate")
}

func (c *Controller) serveHTTP(w http.ResponseWriter, r *http.Request) {
	be := c.table.Load().match(r.Host, r.URL.Path)
	if be == nil {
		http.Error(w, "404 page not found (no Ingress rule matches)", http.StatusNotFound)
		return
	}
	if len(be.endpoints) == 0 {
		http.Error(w, fmt.Sprintf("503 no ready endpoints for service %s/%s", be.namespace, be.service), http.StatusServiceUnavailable)
		return
	}
	target := be.endpoints[c.next.Add(1)%uint64(len(be.endpoints))]
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", target
			pr.SetXForwarded()
			pr.Out.Host = r.Host
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "502 "+err.Error(), http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}
