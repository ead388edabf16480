// Package authn identifies the caller of an API request.
package authn

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"sync"
	"time"
)

// User is an authenticated caller.
type User struct {
	Name   string
	UID    string
	Groups []string
	// Extra carries what else the authenticator knows (the pod and node of
	// a service-account token, as upstream's user.Info extra).
	Extra map[string][]string
}

// Authenticator identifies the caller of r. ok is false when r carries no
// credentials this authenticator understands.
type Authenticator interface {
	Authenticate(r *http.Request) (u *User, ok bool, err error)
}

// ClientCert authenticates TLS client certificates signed by a CA: the
// common name is the user, the organizations are its groups.
//
// Verifying a chain costs an ECDSA verification per certificate: at scale,
// the nodes' and components' requests spent 6 % of the server's CPU on it,
// every request again for the same few certificates. A verified leaf is
// remembered for verifiedFor, and never past its chain's expiry.
type ClientCert struct {
	roots *x509.CertPool
	now   func() time.Time

	mu       sync.Mutex
	verified map[string]time.Time // a verified leaf's DER bytes → valid until
}

const (
	verifiedFor = 5 * time.Minute
	maxVerified = 10000 // distinct certificates remembered; beyond, start over
)

// NewClientCert trusts client certificates signed by roots.
func NewClientCert(roots *x509.CertPool) *ClientCert {
	return &ClientCert{roots: roots, now: time.Now, verified: map[string]time.Time{}}
}

// Authenticate implements Authenticator.
func (c *ClientCert) Authenticate(r *http.Request) (*User, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	if err := c.verify(leaf, r.TLS.PeerCertificates[1:]); err != nil {
		return nil, false, err
	}
	groups := append(append([]string{}, leaf.Subject.Organization...), "system:authenticated")
	return &User{Name: leaf.Subject.CommonName, Groups: groups}, true, nil
}

// verify checks that leaf chains to the roots as a client certificate,
// or was found to recently.
func (c *ClientCert) verify(leaf *x509.Certificate, intermediates []*x509.Certificate) error {
	now := c.now()
	c.mu.Lock()
	until, ok := c.verified[string(leaf.Raw)]
	c.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: c.roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	until = now.Add(verifiedFor)
	for _, cert := range chains[0] {
		if cert.NotAfter.Before(until) {
			until = cert.NotAfter
		}
	}
	c.mu.Lock()
	if len(c.verified) >= maxVerified {
		clear(c.verified)
	}
	c.verified[string(leaf.Raw)] = until
	c.mu.Unlock()
	return nil
}

// TokenLookup resolves a bearer token to its user.
type TokenLookup func(token string) (*User, bool)

// BearerToken authenticates `Authorization: Bearer <token>` headers.
type BearerToken struct {
	lookup TokenLookup
}

// NewBearerToken resolves tokens with lookup.
func NewBearerToken(lookup TokenLookup) *BearerToken { return &BearerToken{lookup: lookup} }

// Authenticate implements Authenticator.
func (b *BearerToken) Authenticate(r *http.Request) (*User, bool, error) {
	h := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return nil, false, nil
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, false, nil
	}
	u, ok := b.lookup(token)
	return u, ok, nil
}

// Union tries each authenticator in turn; the first to identify the caller
// wins.
func Union(auths ...Authenticator) Authenticator { return union(auths) }

type union []Authenticator

func (u union) Authenticate(r *http.Request) (*User, bool, error) {
	var firstErr error
	for _, a := range u {
		user, ok, err := a.Authenticate(r)
		if ok && err == nil {
			return user, true, nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return nil, false, firstErr
}

type userKey struct{}

// WithUser returns ctx carrying u.
func WithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// UserFrom returns the user in ctx.
func UserFrom(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok
}
