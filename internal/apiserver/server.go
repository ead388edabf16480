// Package apiserver serves the Kubernetes REST API on top of etcd: routing,
// discovery, the generic CRUD/watch handlers, and Status errors.
package apiserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/policy"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/webhook"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
	"github.com/skiff-dev/skiff/internal/apiserver/authz/bootstrappolicy"
	"github.com/skiff-dev/skiff/internal/apiserver/flowcontrol"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
	"github.com/skiff-dev/skiff/internal/storage"
)

// maxBodyBytes is the largest request body accepted, as upstream (3 MiB).
const maxBodyBytes = 3 << 20

// Config configures a Server.
type Config struct {
	Store     *storage.Store
	Resources []*apis.Resource
	// Authenticator identifies callers; nil admits every request (tests).
	Authenticator authn.Authenticator
	// AccessControl turns on authorization (system:masters, then the Node
	// authorizer, then RBAC over the server's caches) and the admission
	// plugins that guard identities (ServiceAccount, NodeRestriction, the
	// certificate plugins). Off, every request is allowed: for tests of
	// other parts.
	AccessControl bool
	// Authorizer, when set, replaces the authorizer chain (tests).
	Authorizer authz.Authorizer
	// GitVersion is reported by /version, e.g. "v1.37.2+skiff".
	GitVersion string
	Logger     *slog.Logger
	// ServiceCIDR is the range cluster IPs are allocated from.
	ServiceCIDR *net.IPNet
	// PublicAddress and PublicPort are where pods reach the API server
	// (the endpoints of default/kubernetes).
	PublicAddress net.IP
	PublicPort    int
	// NodePorts is the range node ports are allocated from.
	NodePorts PortRange
	// WatchCacheHistory is how many events each resource's watch cache
	// keeps for resuming watches (default 10000).
	WatchCacheHistory int
	// BootstrapTokens authenticates kubeadm-style bootstrap tokens (Secrets
	// in kube-system), which joining nodes use to ask for certificates.
	BootstrapTokens bool
	// KubeletTransport reaches the kubelets' APIs (logs, exec, port-forward,
	// node proxy) with the API server's client certificate; nil disables
	// those subresources.
	KubeletTransport http.RoundTripper
	// KubeletTLS is the same client configuration, for the streams the API
	// server translates from WebSocket to SPDY.
	KubeletTLS *tls.Config
	// ExtraHandlers are mounted on exact paths or prefixes ending in "/"
	// (OpenAPI, metrics, ...). They are served after authentication.
	ExtraHandlers map[string]http.Handler
	// ServiceAccountTokens enables TokenRequest, ServiceAccount token
	// authentication and OIDC discovery; nil disables them.
	ServiceAccountTokens *ServiceAccountTokens
	// Components check the health of the control-plane components that
	// componentstatuses reports ("scheduler", "controller-manager"); one
	// not given is probed on upstream's port, as upstream does.
	Components map[string]ComponentCheck
	// FlowControl configures API Priority and Fairness (apf.go).
	FlowControl FlowControlConfig
	// CustomResourceConverter, when set, replaces the ConversionReview
	// client that converts custom objects of CRDs with Webhook conversion.
	CustomResourceConverter CustomResourceConverter
	// CustomResourceOpenAPI, when set, is told the served custom resources
	// whenever they change (the OpenAPI documents).
	CustomResourceOpenAPI CustomResourceOpenAPI
	// Aggregation configures the proxy to extension API servers
	// (aggregator.go).
	Aggregation AggregationConfig
}

// Server is the API server's HTTP handler.
type Server struct {
	cfg       Config
	log       *slog.Logger
	codecs    *codecs
	reg       *apis.Registry
	resources map[schema.GroupVersionResource]*resource
	byKind    map[schema.GroupVersionKind]*resource
	// sharedPrefixes groups the built-ins served under one storage
	// prefix in several versions or groups, for matchPolicy Equivalent.
	sharedPrefixes func() map[string][]*resource
	// reviews are the create-only resources (TokenReview, the access
	// reviews), answered by reviews.go and never stored.
	reviews   map[schema.GroupVersionResource]*apis.Resource
	discovery *discovery
	extra     *http.ServeMux
	// authenticator is the configured one, plus bootstrap tokens.
	authenticator authn.Authenticator
	// saTokens verifies ServiceAccount tokens (nil when not configured).
	saTokens *satoken.Authenticator
	// authorizer is the configured chain; admission the write plugins.
	authorizer authz.Authorizer
	rbac       *authz.RBAC
	admission  *admission.Chain
	flow       flowController
	// agg proxies group versions that APIServices delegate elsewhere.
	agg *aggregator
	// webhooks calls admission (and conversion) webhooks, pooling their
	// connections.
	webhooks *webhook.Caller
	// metrics are the request, watch and storage series (metrics.go).
	metrics *apiMetrics

	serviceCIDR *net.IPNet
	nodePorts   PortRange
	// masterLease keeps this server's address in the kubernetes Service's
	// endpoints (endpointreconciler.go); only its goroutine touches it.
	masterLease clientv3.LeaseID

	// custom is the snapshot of served custom resources, replaced by the
	// CRD controller (crd_controller.go) whenever CRDs change.
	custom atomic.Pointer[customSet]
	crds   *crdController
	// runCtx is Run's context, which custom resource caches run under.
	runCtx context.Context

	wg      sync.WaitGroup // long-running caches
	readyMu sync.Mutex
	ready   bool
}

// New builds a Server. Call Run to start its caches.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c, err := newCodecs()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		codecs:    c,
		reg:       apis.NewRegistry(cfg.Resources),
		resources: map[schema.GroupVersionResource]*resource{},
		byKind:    map[schema.GroupVersionKind]*resource{},
		reviews:   map[schema.GroupVersionResource]*apis.Resource{},
		extra:     http.NewServeMux(),

		serviceCIDR: cfg.ServiceCIDR,
		nodePorts:   cfg.NodePorts,
	}
	if s.nodePorts.Size == 0 {
		s.nodePorts = DefaultNodePortRange
	}
	if cfg.Authenticator != nil {
		s.authenticator = cfg.Authenticator
		if cfg.BootstrapTokens {
			s.authenticator = authn.Union(cfg.Authenticator, authn.NewBearerToken(s.bootstrapTokenUser))
		}
	}
	if err := s.installServiceAccountTokens(); err != nil {
		return nil, err
	}
	s.webhooks = webhook.NewCaller(webhookSource{s})
	if cfg.AccessControl {
		s.rbac = authz.NewRBAC(rbacSource{s})
		s.authorizer = authz.Chain(authz.Privileged, authz.NewNode(nodeSource{s}, bootstrappolicy.NodeRules()), s.rbac)
		hooks := webhookSource{s}
		hookDeps := webhook.Deps{Configs: hooks, Namespaces: hooks, Resolver: hooks, Authorizer: s.authorizer, Caller: s.webhooks}
		policyDeps := s.policyDeps()
		s.admission = admission.Default(admission.Deps{
			Authorizer:       s.authorizer,
			ServiceAccounts:  saTokenSource{s},
			Pod:              saTokenSource{s}.GetPod,
			LimitRanges:      limitRangeSource{s},
			Quotas:           quotaSource{s},
			RuntimeClasses:   runtimeClassSource{s},
			Namespaces:       podSecuritySource{s},
			Pods:             podSecuritySource{s},
			IngressClasses:   ingressClassSource{s},
			StorageClasses:   storageClassSource{s},
			PolicyMutator:    policy.NewMutating(policyDeps),
			WebhookMutator:   webhook.NewMutating(hookDeps),
			PolicyValidator:  policy.NewValidating(policyDeps),
			WebhookValidator: webhook.NewValidating(hookDeps),
		})
	}
	if cfg.Authorizer != nil {
		s.authorizer = cfg.Authorizer
	}
	for _, r := range cfg.Resources {
		if r.CreateOnly || r.Verbs != nil {
			s.reviews[r.GVR] = r // not stored: answered by handlers of their own
			continue
		}
		res := newResource(r, cfg.Store, c, cfg.WatchCacheHistory)
		s.resources[r.GVR] = res
		s.byKind[res.gvk] = res
	}
	s.sharedPrefixes = sync.OnceValue(s.groupSharedPrefixes)
	s.flow = s.newFlowControl(cfg.FlowControl)
	s.agg = newAggregator(s)
	if svcs := s.resources[corev1.SchemeGroupVersion.WithResource("services")]; svcs != nil {
		svcs.reservations = s.serviceReservationChanges
	}
	s.discovery, err = newDiscovery(s.reg, cfg.Resources, cfg.GitVersion)
	if err != nil {
		return nil, err
	}
	s.crds = newCRDController(s)
	s.metrics = newAPIMetrics(s)
	for p, h := range cfg.ExtraHandlers {
		s.extra.Handle(p, h)
	}
	return s, nil
}

// Run starts the watch caches and blocks until ctx ends.
func (s *Server) Run(ctx context.Context) {
	s.runCtx = ctx
	for _, r := range s.resources {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r.cache.Run(ctx)
		}()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.runFlowControl(ctx) }()
	if s.crds != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.crds.run(ctx) }()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.agg.runAvailability(ctx) }()
	s.wg.Wait()
}

// WaitReady blocks until every cache holds its first list.
func (s *Server) WaitReady(ctx context.Context) error {
	for _, r := range s.resources {
		select {
		case <-r.cache.Ready():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.crds != nil {
		// CRDs present at start are served before the server is ready.
		select {
		case <-s.crds.synced:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// MarkReady makes /readyz answer ok: the caches are loaded and whoever
// runs the server has created the system objects (as upstream's post-start
// hooks gate readiness), so a client that sees ready finds them.
func (s *Server) MarkReady() {
	s.readyMu.Lock()
	s.ready = true
	s.readyMu.Unlock()
}

func (s *Server) isReady() bool {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	return s.ready
}

// serveHTTP authenticates and routes one request (ServeHTTP in
// metrics_request.go records it).
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.recoverPanic(w, r)
	switch r.URL.Path {
	case "/healthz", "/livez":
		_, _ = w.Write([]byte("ok"))
		return
	case "/readyz":
		if !s.isReady() {
			http.Error(w, "caches not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
		return
	}
	u, err := s.authenticate(r)
	if err == nil && u != nil {
		u, err = s.impersonate(r, u)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ticket, ok := s.admitFlow(w, r, u) // priority and fairness, as upstream before authorization
	if !ok {
		return
	}
	defer ticket.Done()
	if u != nil {
		// A WATCH's ticket rides in the context so that the watch can free
		// its seats once initialized; other tickets add nothing.
		r = r.WithContext(authn.WithUser(flowcontrol.WithTicket(r.Context(), ticket), u))
		if err := s.authorize(r, requestAttributes(r, u)); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if r.ContentLength > maxBodyBytes {
		s.writeError(w, r, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes)))
		return
	}
	path := r.URL.Path
	switch {
	case path == "/version" || path == "/version/":
		s.discovery.serveVersion(w, r, s)
	case path == "/api" || path == "/api/":
		s.discovery.serveAPI(w, r, s)
	case path == "/apis" || path == "/apis/":
		s.discovery.serveAPIs(w, r, s)
	case strings.HasPrefix(path, "/apis/") && s.proxyAggregated(w, r):
	case strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/apis/"):
		s.serveResource(w, r)
	default:
		if h, pattern := s.extra.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		s.writeError(w, r, apierrors.NewNotFound(schema.GroupResource{}, ""))
	}
}

// requestInfo is what the URL of a resource request says.
type requestInfo struct {
	gv          schema.GroupVersion
	namespace   string
	resource    string
	name        string
	subresource string
}

// parsePath splits /api/v1/... and /apis/<group>/<version>/... paths.
// ok is false for discovery paths (group or group-version documents).
func parsePath(path string) (info requestInfo, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch parts[0] {
	case "api":
		if len(parts) < 2 {
			return info, false
		}
		info.gv = schema.GroupVersion{Version: parts[1]}
		parts = parts[2:]
	case "apis":
		if len(parts) < 3 {
			if len(parts) == 2 {
				info.gv.Group = parts[1]
			}
			return info, false
		}
		info.gv = schema.GroupVersion{Group: parts[1], Version: parts[2]}
		parts = parts[3:]
	default:
		return info, false
	}
	if len(parts) == 0 {
		return info, false
	}
	if parts[0] == "namespaces" && len(parts) > 1 {
		info.namespace = parts[1]
		if len(parts) > 2 && parts[2] != "status" && parts[2] != "finalize" {
			parts = parts[2:]
		} else {
			// The namespace object itself (and its subresources).
			info.namespace = ""
		}
	}
	info.resource = parts[0]
	if len(parts) > 1 {
		info.name = parts[1]
	}
	if len(parts) > 2 {
		info.subresource = strings.Join(parts[2:], "/")
	}
	return info, true
}

// requestTimeout bounds non-watch requests (upstream's default
// --request-timeout); a variable so tests can shorten it.
var requestTimeout = 60 * time.Second
