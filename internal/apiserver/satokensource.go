package apiserver

import (
	"crypto/rsa"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
)

var (
	serviceAccountsGVR = corev1.SchemeGroupVersion.WithResource("serviceaccounts")
	secretsGVR         = corev1.SchemeGroupVersion.WithResource("secrets")
)

// ServiceAccountTokens configures ServiceAccount tokens: the TokenRequest
// API, their authentication, and OIDC discovery.
type ServiceAccountTokens struct {
	Issuer *satoken.Issuer
	// Audiences are those the API server accepts and gives tokens that
	// ask for none (default: the issuer).
	Audiences []string
	// MaxExpiration caps requested token lifetimes; zero means no cap.
	MaxExpiration time.Duration
	// ExtendExpiration gives the kubelet's 3607-second pod tokens a year
	// of validity (warning after the requested lifetime), as upstream
	// does for clients that do not refresh tokens yet.
	ExtendExpiration bool
	// JWKSURI is where the discovery document says the keys are
	// (default: <issuer>/openid/v1/jwks).
	JWKSURI string
}

// installServiceAccountTokens adds the ServiceAccount token authenticator
// after the configured ones and mounts the OIDC discovery documents.
func (s *Server) installServiceAccountTokens() error {
	sat := s.cfg.ServiceAccountTokens
	if sat == nil || sat.Issuer == nil {
		return nil
	}
	keys := []*rsa.PublicKey{sat.Issuer.PublicKey()}
	s.saTokens = satoken.NewAuthenticator(sat.Issuer.Issuer(), keys, sat.Audiences, saTokenSource{s})
	if s.authenticator != nil {
		s.authenticator = authn.Union(s.authenticator, s.saTokens)
	}
	d, err := satoken.NewDiscovery(sat.Issuer.Issuer(), sat.JWKSURI, keys)
	if err != nil {
		return err
	}
	s.extra.Handle(satoken.OpenIDConfigPath, d.ConfigHandler())
	s.extra.Handle(satoken.JWKSPath, d.JWKSHandler())
	return nil
}

// saTokenSource finds the objects tokens are bound to in the watch caches,
// so checking a token on every request costs no etcd round trip. Objects
// are shared with the cache and must not be modified.
type saTokenSource struct{ s *Server }

func (src saTokenSource) get(gvr schema.GroupVersionResource, ns, name string) (any, bool) {
	res := src.s.resources[gvr]
	if res == nil {
		return nil, false
	}
	e, ok := res.cache.Get(res.key(ns, name))
	if !ok {
		return nil, false
	}
	return e.Obj, true
}

func (src saTokenSource) GetServiceAccount(ns, name string) (*corev1.ServiceAccount, bool) {
	o, _ := src.get(serviceAccountsGVR, ns, name)
	sa, ok := o.(*corev1.ServiceAccount)
	return sa, ok
}

func (src saTokenSource) GetPod(ns, name string) (*corev1.Pod, bool) {
	o, _ := src.get(podsGVR, ns, name)
	p, ok := o.(*corev1.Pod)
	return p, ok
}

func (src saTokenSource) GetSecret(ns, name string) (*corev1.Secret, bool) {
	o, _ := src.get(secretsGVR, ns, name)
	sec, ok := o.(*corev1.Secret)
	return sec, ok
}

func (src saTokenSource) GetNode(name string) (*corev1.Node, bool) {
	o, _ := src.get(nodesGVR, "", name)
	n, ok := o.(*corev1.Node)
	return n, ok
}
