package satoken

import (
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// Keys of the user's extra information, as upstream names them.
const (
	ExtraPodName      = "authentication.kubernetes.io/pod-name"
	ExtraPodUID       = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName     = "authentication.kubernetes.io/node-name"
	ExtraNodeUID      = "authentication.kubernetes.io/node-uid"
	ExtraCredentialID = "authentication.kubernetes.io/credential-id"
)

// Groups every ServiceAccount belongs to.
const (
	AllServiceAccountsGroup = "system:serviceaccounts"
	namespaceGroupPrefix    = "system:serviceaccounts:"
)

// leeway absorbs clock skew between servers when checking exp and nbf.
const leeway = time.Minute

// Getter finds the objects tokens name, so revoked tokens stop working as
// soon as the object is gone. Implementations read caches: authentication
// runs on every request.
type Getter interface {
	GetServiceAccount(namespace, name string) (*corev1.ServiceAccount, bool)
	GetPod(namespace, name string) (*corev1.Pod, bool)
	GetSecret(namespace, name string) (*corev1.Secret, bool)
	GetNode(name string) (*corev1.Node, bool)
}

// Authenticator authenticates ServiceAccount bearer tokens.
type Authenticator struct {
	issuers   []string
	keys      []*rsa.PublicKey
	audiences []string
	getter    Getter
	now       func() time.Time
	verified  verifiedCache
}

// NewAuthenticator accepts tokens of issuer (and legacy Secret tokens)
// signed by one of keys and meant for one of audiences (default: the
// issuer), whose objects getter still finds.
func NewAuthenticator(issuer string, keys []*rsa.PublicKey, audiences []string, getter Getter) *Authenticator {
	if len(audiences) == 0 {
		audiences = []string{issuer}
	}
	return &Authenticator{issuers: []string{issuer}, keys: keys, audiences: audiences, getter: getter, now: time.Now}
}

// Audiences are the audiences the API server accepts.
func (a *Authenticator) Audiences() []string { return a.audiences }

// Authenticate implements authn.Authenticator.
func (a *Authenticator) Authenticate(r *http.Request) (*authn.User, bool, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return nil, false, nil
	}
	return a.AuthenticateToken(strings.TrimSpace(token))
}

// AuthenticateToken checks one token for the API server's audiences. ok
// is false with no error for tokens that are not ServiceAccount tokens of
// this cluster; a token that claims to be one but does not verify is an
// error.
func (a *Authenticator) AuthenticateToken(token string) (*authn.User, bool, error) {
	u, _, ok, err := a.AuthenticateTokenFor(token, a.audiences)
	return u, ok, err
}

// AuthenticateTokenFor checks a token for audiences (TokenReview's
// spec.audiences) and returns those of them the token carries. Legacy
// tokens carry none and are only valid for the API server's audiences.
func (a *Authenticator) AuthenticateTokenFor(token string, audiences []string) (u *authn.User, matched []string, ok bool, err error) {
	c, ok, err := a.verifiedClaims(token)
	if !ok || err != nil {
		return nil, nil, false, err
	}
	if c.Issuer == LegacyIssuer {
		matched = intersect(audiences, a.audiences)
		if len(matched) == 0 {
			return nil, nil, false, fmt.Errorf("service account token: legacy token is invalid for the target audiences %q", audiences)
		}
		u, err = a.legacyUser(token, c)
	} else {
		matched = intersect(audiences, c.Audience)
		if len(matched) == 0 {
			return nil, nil, false, fmt.Errorf("service account token: token audiences %q are invalid for the target audiences %q", []string(c.Audience), audiences)
		}
		u, err = a.boundUser(c)
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("service account token: %w", err)
	}
	return u, matched, true, nil
}

// verifiedClaims returns the claims of a token signed by one of the keys.
// ok is false for tokens that are not ours.
func (a *Authenticator) verifiedClaims(token string) (*claims, bool, error) {
	if c, ok := a.verified.get(token); ok {
		return c, true, nil
	}
	j, err := parseJWS(token)
	if err != nil {
		return nil, false, nil
	}
	c := &claims{}
	if json.Unmarshal(j.payload, c) != nil {
		return nil, false, nil
	}
	if c.Issuer != LegacyIssuer && !slices.Contains(a.issuers, c.Issuer) {
		return nil, false, nil
	}
	if err := j.verify(a.keys); err != nil {
		return nil, false, fmt.Errorf("service account token: %w", err)
	}
	a.verified.add(token, c)
	return c, true, nil
}

// intersect returns the elements of want also in have, in want's order.
func intersect(want, have []string) []string {
	var out []string
	for _, w := range want {
		if slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

func (a *Authenticator) boundUser(c *claims) (*authn.User, error) {
	now := a.now()
	if c.Expiry == 0 || now.After(time.Unix(c.Expiry, 0).Add(leeway)) {
		return nil, fmt.Errorf("token has expired")
	}
	if c.NotBefore != 0 && now.Add(leeway).Before(time.Unix(c.NotBefore, 0)) {
		return nil, fmt.Errorf("token is not valid yet")
	}
	pc := c.Kubernetes
	if pc == nil || pc.Namespace == "" || pc.ServiceAccount == nil || pc.ServiceAccount.Name == "" {
		return nil, fmt.Errorf("token names no service account")
	}
	if c.Subject != Subject(pc.Namespace, pc.ServiceAccount.Name) {
		return nil, fmt.Errorf("token subject %q does not match its service account", c.Subject)
	}
	sa, err := a.serviceAccount(pc.Namespace, pc.ServiceAccount.Name, pc.ServiceAccount.UID, now)
	if err != nil {
		return nil, err
	}
	u := userFor(sa)
	if c.ID != "" {
		u.Extra[ExtraCredentialID] = []string{"JTI=" + c.ID}
	}
	if ref := pc.Pod; ref != nil {
		pod, ok := a.getter.GetPod(pc.Namespace, ref.Name)
		if !ok || string(pod.UID) != ref.UID || gone(pod.DeletionTimestamp, now) {
			return nil, fmt.Errorf("pod %s/%s has been deleted", pc.Namespace, ref.Name)
		}
		u.Extra[ExtraPodName] = []string{ref.Name}
		u.Extra[ExtraPodUID] = []string{ref.UID}
	}
	if ref := pc.Secret; ref != nil {
		sec, ok := a.getter.GetSecret(pc.Namespace, ref.Name)
		if !ok || string(sec.UID) != ref.UID || gone(sec.DeletionTimestamp, now) {
			return nil, fmt.Errorf("secret %s/%s has been deleted", pc.Namespace, ref.Name)
		}
	}
	if ref := pc.Node; ref != nil {
		// A pod-bound token names its pod's node for information only;
		// the node check matters for node-bound tokens.
		if pc.Pod == nil {
			node, ok := a.getter.GetNode(ref.Name)
			if !ok || string(node.UID) != ref.UID || gone(node.DeletionTimestamp, now) {
				return nil, fmt.Errorf("node %s has been deleted", ref.Name)
			}
		}
		u.Extra[ExtraNodeName] = []string{ref.Name}
		u.Extra[ExtraNodeUID] = []string{ref.UID}
	}
	return u, nil
}

// legacyUser checks a token from a service-account-token Secret: the
// Secret must still hold exactly this token.
func (a *Authenticator) legacyUser(token string, c *claims) (*authn.User, error) {
	ns, name := c.LegacyNamespace, c.LegacySAName
	if ns == "" || name == "" || c.LegacySecret == "" || c.Subject != Subject(ns, name) {
		return nil, fmt.Errorf("malformed legacy token")
	}
	now := a.now()
	sec, ok := a.getter.GetSecret(ns, c.LegacySecret)
	if !ok || gone(sec.DeletionTimestamp, now) {
		return nil, fmt.Errorf("secret %s/%s has been deleted", ns, c.LegacySecret)
	}
	if subtle.ConstantTimeCompare(sec.Data[corev1.ServiceAccountTokenKey], []byte(token)) != 1 {
		return nil, fmt.Errorf("token does not match secret %s/%s", ns, c.LegacySecret)
	}
	sa, err := a.serviceAccount(ns, name, c.LegacySAUID, now)
	if err != nil {
		return nil, err
	}
	return userFor(sa), nil
}

func (a *Authenticator) serviceAccount(ns, name, uid string, now time.Time) (*corev1.ServiceAccount, error) {
	sa, ok := a.getter.GetServiceAccount(ns, name)
	if !ok || gone(sa.DeletionTimestamp, now) {
		return nil, fmt.Errorf("service account %s/%s has been deleted", ns, name)
	}
	if uid != "" && string(sa.UID) != uid {
		return nil, fmt.Errorf("service account UID (%s) does not match claim (%s)", sa.UID, uid)
	}
	return sa, nil
}

// gone reports whether an object's graceful deletion has run out.
func gone(deletion *metav1.Time, now time.Time) bool {
	return deletion != nil && deletion.Time.Before(now)
}

func userFor(sa *corev1.ServiceAccount) *authn.User {
	return &authn.User{
		Name:   Subject(sa.Namespace, sa.Name),
		UID:    string(sa.UID),
		Groups: []string{AllServiceAccountsGroup, namespaceGroupPrefix + sa.Namespace, "system:authenticated"},
		Extra:  map[string][]string{},
	}
}
