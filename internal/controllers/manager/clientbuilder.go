package manager

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// Token lifetimes of controller credentials, as upstream's controller
// manager requests them.
const (
	controllerTokenSeconds = 3600
	// refreshFraction of a token's lifetime passes before it is renewed.
	refreshFraction = 0.8
	minRetry        = time.Second
	maxRetry        = 30 * time.Second
	fetchTimeout    = 30 * time.Second
)

// ClientBuilder hands out clients that act as ServiceAccounts in
// kube-system (upstream's --use-service-account-credentials): the manager's
// own client creates each ServiceAccount and requests its tokens, and
// every request of the returned clients carries a current token.
type ClientBuilder struct {
	base      *rest.Config
	client    kubernetes.Interface
	namespace string
	clock     clock.Clock
	log       *slog.Logger

	mu      sync.Mutex
	sources map[string]*tokenSource
}

// NewClientBuilder returns a builder whose clients reach the server of
// base (without its credentials); client is the manager's own client.
func NewClientBuilder(base *rest.Config, client kubernetes.Interface, log *slog.Logger) *ClientBuilder {
	return newClientBuilder(base, client, clock.RealClock{}, log)
}

func newClientBuilder(base *rest.Config, client kubernetes.Interface, clk clock.Clock, log *slog.Logger) *ClientBuilder {
	if log == nil {
		log = slog.Default()
	}
	return &ClientBuilder{base: base, client: client, namespace: "kube-system", clock: clk, log: log,
		sources: map[string]*tokenSource{}}
}

// Config returns a client configuration acting as ServiceAccount name.
// Tokens are fetched on first use, so this does not contact the server.
func (b *ClientBuilder) Config(name string) *rest.Config {
	cfg := rest.AnonymousClientConfig(b.base)
	ts := b.source(name)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return &bearerTransport{source: ts, next: rt}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	cfg.UserAgent += "/" + name
	return cfg
}

// Client returns a clientset acting as ServiceAccount name.
func (b *ClientBuilder) Client(name string) (kubernetes.Interface, error) {
	c, err := kubernetes.NewForConfig(b.Config(name))
	if err != nil {
		return nil, fmt.Errorf("client for service account %s: %w", name, err)
	}
	return c, nil
}

// source returns the one token source of name, shared by all its clients.
func (b *ClientBuilder) source(name string) *tokenSource {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts, ok := b.sources[name]
	if !ok {
		ts = &tokenSource{builder: b, name: name}
		b.sources[name] = ts
	}
	return ts
}

// tokenSource caches the token of one ServiceAccount and renews it once
// refreshFraction of its lifetime has passed. When renewal fails the old
// token serves until it expires, and renewal is retried with backoff.
type tokenSource struct {
	builder *ClientBuilder
	name    string

	mu        sync.Mutex
	token     string
	refreshAt time.Time // renew from here on
	expiresAt time.Time
	retryAt   time.Time // no attempt before this, after a failure
	backoff   time.Duration
	lastErr   error
}

// Token returns a token that has not expired, fetching one when due.
func (s *tokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.builder.clock.Now()
	if s.token != "" && now.Before(s.refreshAt) {
		return s.token, nil
	}
	valid := s.token != "" && now.Before(s.expiresAt)
	if now.Before(s.retryAt) {
		if valid {
			return s.token, nil
		}
		return "", s.lastErr
	}
	fetchCtx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	token, expires, err := s.builder.fetch(fetchCtx, s.name)
	if err != nil && ctx.Err() != nil {
		// The caller gave up; that says nothing about the server.
		return "", err
	}
	if err != nil {
		s.backoff = min(max(2*s.backoff, minRetry), maxRetry)
		s.retryAt = now.Add(s.backoff)
		s.lastErr = fmt.Errorf("token for service account %s/%s: %w", s.builder.namespace, s.name, err)
		s.builder.log.Warn("controller credentials", "serviceaccount", s.name, "err", err, "retryIn", s.backoff)
		if valid {
			return s.token, nil
		}
		return "", s.lastErr
	}
	s.token, s.expiresAt = token, expires
	s.refreshAt = now.Add(time.Duration(refreshFraction * float64(expires.Sub(now))))
	s.backoff, s.retryAt, s.lastErr = 0, time.Time{}, nil
	return s.token, nil
}

// invalidate drops token if it is still the current one, so the next
// request fetches another (the server rejected it: the ServiceAccount may
// have been recreated, or the signing key rotated).
func (s *tokenSource) invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

// fetch makes sure the ServiceAccount exists and requests a token for it.
func (b *ClientBuilder) fetch(ctx context.Context, name string) (string, time.Time, error) {
	sas := b.client.CoreV1().ServiceAccounts(b.namespace)
	_, err := sas.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: b.namespace, Name: name}}
		_, err = sas.Create(ctx, sa, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ensure service account: %w", err)
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: new(int64(controllerTokenSeconds)),
	}}
	issued := b.clock.Now()
	resp, err := sas.CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("request token: %w", err)
	}
	if resp.Status.Token == "" {
		return "", time.Time{}, fmt.Errorf("request token: empty token in response")
	}
	expires := resp.Status.ExpirationTimestamp.Time
	if expires.IsZero() || !expires.After(issued) {
		// Trust the lifetime asked for over a missing or skewed timestamp.
		expires = issued.Add(controllerTokenSeconds * time.Second)
	}
	return resp.Status.Token, expires, nil
}

// bearerTransport sends the ServiceAccount's current token with every
// request.
type bearerTransport struct {
	source *tokenSource
	next   http.RoundTripper
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	token, err := t.source.Token(req.Context())
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	resp, err := t.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		t.source.invalidate(token)
	}
	return resp, err
}

// WrappedRoundTripper lets client-go's debugging wrappers see through.
func (t *bearerTransport) WrappedRoundTripper() http.RoundTripper { return t.next }
