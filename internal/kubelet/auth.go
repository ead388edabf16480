package kubelet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Cache lifetimes as upstream's kubelet defaults: authorization decisions
// 5 min when allowed and 30 s when denied, token reviews 2 min.
const (
	allowedTTL       = 5 * time.Minute
	deniedTTL        = 30 * time.Second
	tokenTTL         = 2 * time.Minute
	authCacheEntries = 1024
)

// apiUser is an authenticated caller of the kubelet API.
type apiUser struct {
	name   string
	uid    string
	groups []string
	extra  map[string][]string
}

// apiAuth guards the kubelet API the way upstream's kubelet does with
// webhook authentication and authorization: callers present a client
// certificate from the cluster CA or a bearer token (checked with a
// TokenReview), and each request must be allowed by a SubjectAccessReview
// on this node's nodes/<subresource>.
type apiAuth struct {
	client    kubernetes.Interface
	node      string
	log       *slog.Logger
	tokens    *expiringLRU[*apiUser] // by token hash; nil user = rejected
	decisions *expiringLRU[bool]
}

func newAPIAuth(client kubernetes.Interface, node string, log *slog.Logger) *apiAuth {
	return &apiAuth{
		client: client, node: node, log: log,
		tokens:    newExpiringLRU[*apiUser](authCacheEntries),
		decisions: newExpiringLRU[bool](authCacheEntries),
	}
}

// wrap authenticates and authorizes every request but /healthz.
func (a *apiAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		u, err := a.authenticate(r)
		if err != nil {
			a.log.Warn("kubelet API authentication", "err", err)
		}
		if u == nil {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		verb, sub := requestVerb(r.Method), requestSubresource(r.URL.Path)
		attrs := fmt.Sprintf("user=%s, verb=%s, resource=nodes, subresource=%s", u.name, verb, sub)
		allowed, err := a.authorize(r.Context(), u, verb, sub)
		switch {
		case err != nil:
			a.log.Warn("kubelet API authorization", "err", err, "user", u.name)
			http.Error(w, "Authorization error ("+attrs+")", http.StatusInternalServerError)
		case !allowed:
			http.Error(w, "Forbidden ("+attrs+")", http.StatusForbidden)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// authenticate returns the caller, or nil when it presented no valid
// credentials. The TLS layer has already verified client certificates
// against the cluster CA.
func (a *apiAuth) authenticate(r *http.Request) (*apiUser, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		if cert.Subject.CommonName != "" {
			return &apiUser{name: cert.Subject.CommonName, groups: append([]string(nil), cert.Subject.Organization...)}, nil
		}
	}
	token, ok := bearerToken(r)
	if !ok {
		return nil, nil
	}
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	if u, ok := a.tokens.get(key); ok {
		return u, nil
	}
	review, err := a.client.AuthenticationV1().TokenReviews().Create(r.Context(),
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	var u *apiUser
	if st := review.Status; st.Authenticated {
		u = &apiUser{name: st.User.Username, uid: st.User.UID, groups: st.User.Groups, extra: map[string][]string{}}
		for k, v := range st.User.Extra {
			u.extra[k] = v
		}
	}
	a.tokens.add(key, u, tokenTTL)
	return u, nil
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authorize asks the API server whether u may verb nodes/sub of this node.
func (a *apiAuth) authorize(ctx context.Context, u *apiUser, verb, sub string) (bool, error) {
	key := decisionKey(u, verb, sub)
	if allowed, ok := a.decisions.get(key); ok {
		return allowed, nil
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.name, UID: u.uid, Groups: u.groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Version: "v1", Resource: "nodes", Subresource: sub, Name: a.node,
		},
	}}
	if len(u.extra) > 0 {
		sar.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(u.extra))
		for k, v := range u.extra {
			sar.Spec.Extra[k] = v
		}
	}
	resp, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	allowed := resp.Status.Allowed && !resp.Status.Denied
	ttl := deniedTTL
	if allowed {
		ttl = allowedTTL
	}
	a.decisions.add(key, allowed, ttl)
	return allowed, nil
}

// decisionKey identifies a user and request for the decision cache.
func decisionKey(u *apiUser, verb, sub string) string {
	keys := make([]string, 0, len(u.extra))
	for k := range u.extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%q %q %q %q %q", verb, sub, u.name, u.uid, u.groups)
	for _, k := range keys {
		fmt.Fprintf(&b, " %q=%q", k, u.extra[k])
	}
	return b.String()
}

// requestVerb maps an HTTP method to the API verb checked.
func requestVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}

// requestSubresource maps a kubelet API path to the nodes subresource that
// guards it; everything without a narrower one is nodes/proxy.
func requestSubresource(path string) string {
	under := func(prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }
	switch {
	case under("/stats"):
		return "stats"
	case strings.HasPrefix(path, "/metrics"):
		return "metrics"
	case under("/logs"):
		return "log"
	case under("/spec"):
		return "spec"
	}
	return "proxy"
}
