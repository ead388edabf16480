package satoken

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
)

// Issuer signs ServiceAccount tokens.
type Issuer struct {
	issuer string
	key    *rsa.PrivateKey
	kid    string
	now    func() time.Time
}

// NewIssuer signs tokens for issuer (the "iss" claim) with key.
func NewIssuer(issuer string, key *rsa.PrivateKey) (*Issuer, error) {
	if issuer == "" {
		return nil, errors.New("service account issuer must not be empty")
	}
	if key == nil {
		return nil, errors.New("service account signing key is missing")
	}
	kid, err := KeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Issuer{issuer: issuer, key: key, kid: kid, now: time.Now}, nil
}

// Issuer is the "iss" of the tokens signed.
func (i *Issuer) Issuer() string { return i.issuer }

// PublicKey is the key that verifies the tokens signed.
func (i *Issuer) PublicKey() *rsa.PublicKey { return &i.key.PublicKey }

// Request describes a bound token.
type Request struct {
	Namespace      string
	ServiceAccount Ref
	Audiences      []string
	// Lifetime is how long the token is valid.
	Lifetime time.Duration
	// WarnAfter, when set, is how long after issue an extended token
	// should have been replaced.
	WarnAfter time.Duration
	// Pod, Secret and Node are the objects the token is bound to; Node
	// may accompany Pod (the node the pod runs on).
	Pod, Secret, Node *Ref
}

// Issue signs a bound token and returns it with its expiry.
func (i *Issuer) Issue(r Request) (token string, expiry time.Time, err error) {
	if r.Namespace == "" || r.ServiceAccount.Name == "" {
		return "", time.Time{}, errors.New("token request names no service account")
	}
	if len(r.Audiences) == 0 {
		return "", time.Time{}, errors.New("token request has no audiences")
	}
	if r.Lifetime <= 0 {
		return "", time.Time{}, fmt.Errorf("invalid token lifetime %v", r.Lifetime)
	}
	now := i.now().Truncate(time.Second)
	expiry = now.Add(r.Lifetime)
	sa := r.ServiceAccount
	pc := &PrivateClaims{Namespace: r.Namespace, ServiceAccount: &sa, Pod: r.Pod, Secret: r.Secret, Node: r.Node}
	if r.WarnAfter > 0 {
		w := now.Add(r.WarnAfter).Unix()
		pc.WarnAfter = &w
	}
	c := claims{
		Issuer:     i.issuer,
		Subject:    Subject(r.Namespace, sa.Name),
		Audience:   r.Audiences,
		Expiry:     expiry.Unix(),
		IssuedAt:   now.Unix(),
		NotBefore:  now.Unix(),
		ID:         string(uuid.NewUUID()),
		Kubernetes: pc,
	}
	token, err = sign(i.key, i.kid, c)
	return token, expiry, err
}

// IssueLegacy signs the non-expiring token upstream's token controller
// stores in a Secret of type kubernetes.io/service-account-token.
func (i *Issuer) IssueLegacy(namespace string, sa Ref, secretName string) (string, error) {
	return sign(i.key, i.kid, claims{
		Issuer:          LegacyIssuer,
		Subject:         Subject(namespace, sa.Name),
		LegacyNamespace: namespace,
		LegacySecret:    secretName,
		LegacySAName:    sa.Name,
		LegacySAUID:     sa.UID,
	})
}
