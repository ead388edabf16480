package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/flowcontrol"
)

// AggregationConfig is what the server needs to proxy requests for group
// versions that APIServices delegate to extension API servers, as
// upstream's kube-aggregator does.
type AggregationConfig struct {
	// ProxyClient is the certificate the server presents to extension
	// servers (upstream's --proxy-client-cert-file): they trust the
	// X-Remote-* identity headers of requests signed by RequestHeaderCA.
	ProxyClient *tls.Certificate
	// RequestHeaderCAPEM signs ProxyClient; ClientCAPEM signs users'
	// client certificates. Both are published in
	// kube-system/extension-apiserver-authentication for extension servers.
	RequestHeaderCAPEM []byte
	ClientCAPEM        []byte
	// ProxyClientName is ProxyClient's common name, the one name extension
	// servers accept identity headers from.
	ProxyClientName string
}

var apiServicesGVR = apiregistrationv1.SchemeGroupVersion.WithResource("apiservices")

// aggregator routes requests for remotely served group versions to their
// extension API servers. Its view of the APIServices is rebuilt from the
// watch cache whenever the cache's revision moves, so a request costs one
// map lookup.
type aggregator struct {
	s *Server

	mu      sync.Mutex
	rev     int64
	remotes map[schema.GroupVersion]*remoteAPI
	// view is rev and remotes published for lock-free reads.
	view atomic.Pointer[remoteView]
	// gen moves whenever the remote APIs or their documents change, so
	// the merged discovery (disc) knows to rebuild.
	gen  atomic.Int64
	disc remoteDiscovery
}

func (a *aggregator) generation() int64 { return a.gen.Load() }

// remoteView is one immutable snapshot of the remote APIs.
type remoteView struct {
	rev     int64
	remotes map[schema.GroupVersion]*remoteAPI
}

// remoteAPI is one APIService with a service: where and how to reach it.
type remoteAPI struct {
	svc   *apiregistrationv1.APIService
	proxy *httputil.ReverseProxy
	// client reaches the service directly, for availability checks.
	client *http.Client
	// resources is the group version's document from the last successful
	// check, merged into discovery.
	resources atomic.Pointer[metav1.APIResourceList]
}

func newAggregator(s *Server) *aggregator {
	return &aggregator{s: s, rev: -1}
}

// remote returns the remote API serving gv, or nil when gv is served here
// (or by nobody).
func (a *aggregator) remote(gv schema.GroupVersion) *remoteAPI {
	if a == nil {
		return nil
	}
	return a.snapshot()[gv]
}

// snapshot returns the current remote APIs, rebuilding them when the
// APIServices changed. Transports of unchanged APIServices are kept, so
// their connections are reused.
func (a *aggregator) snapshot() map[schema.GroupVersion]*remoteAPI {
	res := a.s.resources[apiServicesGVR]
	if res == nil {
		return nil
	}
	rev := res.cache.Rev()
	// Every request under /apis/ asks: answer from the published view
	// without a lock while the APIServices have not changed.
	if v := a.view.Load(); v != nil && v.rev == rev {
		return v.remotes
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if rev == a.rev {
		return a.remotes
	}
	entries, _ := res.cache.List(res.prefix, nil)
	next := make(map[schema.GroupVersion]*remoteAPI, len(entries))
	for _, e := range entries {
		svc, ok := e.Obj.(*apiregistrationv1.APIService)
		if !ok || svc.Spec.Service == nil {
			continue
		}
		gv := schema.GroupVersion{Group: svc.Spec.Group, Version: svc.Spec.Version}
		if old := a.remotes[gv]; old != nil && old.svc.ResourceVersion == svc.ResourceVersion {
			next[gv] = old
			continue
		}
		r, err := a.newRemote(svc)
		if err != nil {
			a.s.log.Warn("aggregated API unusable", "apiservice", svc.Name, "err", err)
			continue
		}
		next[gv] = r
	}
	for gv, old := range a.remotes {
		if next[gv] != old {
			old.client.CloseIdleConnections()
		}
	}
	a.rev, a.remotes = rev, next
	a.view.Store(&remoteView{rev: rev, remotes: next})
	a.gen.Add(1)
	return next
}

func (a *aggregator) newRemote(svc *apiregistrationv1.APIService) (*remoteAPI, error) {
	ref := svc.Spec.Service
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: ref.Name + "." + ref.Namespace + ".svc",
		// Extension servers authenticate this server by its front-proxy
		// client certificate.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := a.s.cfg.Aggregation.ProxyClient; c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	if svc.Spec.InsecureSkipTLSVerify {
		tlsCfg.InsecureSkipVerify = true
	} else {
		pool := x509.NewCertPool()
		if len(svc.Spec.CABundle) > 0 && !pool.AppendCertsFromPEM(svc.Spec.CABundle) {
			return nil, fmt.Errorf("caBundle holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	port := int32(443)
	if ref.Port != nil {
		port = *ref.Port
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 20,
		// Every connection goes to a live endpoint of the service, chosen
		// when dialing, so the server works without a node proxy.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			addr, err := webhookSource{a.s}.ResolveService(ctx, ref.Namespace, ref.Name, port)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	target := &url.URL{Scheme: "https", Host: net.JoinHostPort(tlsCfg.ServerName, strconv.Itoa(int(port)))}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
			pr.Out.Host = target.Host
			setIdentityHeaders(pr.Out.Header, pr.In)
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.s.log.Debug("aggregated API unreachable", "apiservice", svc.Name, "err", err)
			a.s.writeError(w, r, apierrors.NewServiceUnavailable(
				fmt.Sprintf("error trying to reach service: %v", err)))
		},
	}
	return &remoteAPI{svc: svc, proxy: proxy, client: &http.Client{Transport: transport, Timeout: 5 * time.Second}}, nil
}

// setIdentityHeaders replaces the caller's credentials with the identity
// this server authenticated, in upstream's request headers.
func setIdentityHeaders(h http.Header, in *http.Request) {
	h.Del("Authorization")
	for k := range h {
		if len(k) > len("Impersonate-") && http.CanonicalHeaderKey(k[:len("Impersonate-")]) == "Impersonate-" {
			h.Del(k)
		}
	}
	for k := range h {
		if len(k) >= len("X-Remote-") && http.CanonicalHeaderKey(k[:len("X-Remote-")]) == "X-Remote-" {
			h.Del(k)
		}
	}
	u, ok := authn.UserFrom(in.Context())
	if !ok || u == nil {
		h.Set("X-Remote-User", "system:anonymous")
		h.Add("X-Remote-Group", "system:unauthenticated")
		return
	}
	h.Set("X-Remote-User", u.Name)
	if u.UID != "" {
		h.Set("X-Remote-Uid", u.UID)
	}
	for _, g := range u.Groups {
		h.Add("X-Remote-Group", g)
	}
	for k, vs := range u.Extra {
		for _, v := range vs {
			h.Add("X-Remote-Extra-"+url.PathEscape(k), v)
		}
	}
}

// proxyAggregated serves r by its extension server when an APIService
// delegates r's group version; it reports whether it did.
func (s *Server) proxyAggregated(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/apis/"), "/", 3)
	if len(parts) < 2 || parts[1] == "" {
		return false
	}
	remote := s.agg.remote(schema.GroupVersion{Group: parts[0], Version: parts[1]})
	if remote == nil {
		return false
	}
	// The extension server limits the request itself: a WATCH frees its
	// seats here rather than hold them for its life, as upstream.
	flowcontrol.RequestDelegated(r.Context())
	remote.proxy.ServeHTTP(w, r)
	return true
}
