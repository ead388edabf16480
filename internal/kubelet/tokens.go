package kubelet

import (
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

const (
	// defaultTokenExpiration is the API's default for a projected token.
	defaultTokenExpiration = 3600
	// maxTokenAge forces a refresh of long-lived tokens, as upstream does.
	maxTokenAge = 24 * time.Hour
)

// tokenKey identifies one projected token of a pod.
type tokenKey struct {
	pod            types.UID
	serviceAccount string
	audience       string
	expiration     int64
}

type cachedToken struct {
	token   string
	issued  time.Time
	expires time.Time
}

// needsRefresh reports whether 80 % of the token's life (or a day) passed.
func (t *cachedToken) needsRefresh(now time.Time) bool {
	life := t.expires.Sub(t.issued)
	age := now.Sub(t.issued)
	return age >= life*8/10 || age >= maxTokenAge
}

// tokenManager fetches ServiceAccount tokens for projected volumes through
// TokenRequest and caches them per pod until they are due for refresh.
type tokenManager struct {
	client kubernetes.Interface
	now    func() time.Time

	mu     sync.Mutex
	tokens map[tokenKey]*cachedToken
}

func newTokenManager(client kubernetes.Interface) *tokenManager {
	return &tokenManager{client: client, now: time.Now, tokens: map[tokenKey]*cachedToken{}}
}

// token returns a token for the pod's ServiceAccount bound to the pod,
// requesting a new one when none is cached or the cached one is due.
func (m *tokenManager) token(ctx context.Context, pod *v1.Pod, src *v1.ServiceAccountTokenProjection) (string, error) {
	t, err := m.fetch(ctx, pod, src.Audience, src.ExpirationSeconds)
	if err != nil {
		return "", err
	}
	return t.token, nil
}

// PodToken is token for CSI drivers' tokenRequests (csi.TokenSource):
// the same cache, and the token's expiry too. An empty audience means
// the API server's audiences; nil expirationSeconds the API's default.
func (m *tokenManager) PodToken(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds *int64) (authenticationv1.TokenRequestStatus, error) {
	t, err := m.fetch(ctx, pod, audience, expirationSeconds)
	if err != nil {
		return authenticationv1.TokenRequestStatus{}, err
	}
	return authenticationv1.TokenRequestStatus{Token: t.token, ExpirationTimestamp: metav1.NewTime(t.expires)}, nil
}

func (m *tokenManager) fetch(ctx context.Context, pod *v1.Pod, audience string, expirationSeconds *int64) (*cachedToken, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(defaultTokenExpiration)
	if expirationSeconds != nil {
		exp = *expirationSeconds
	}
	key := tokenKey{pod: pod.UID, serviceAccount: sa, audience: audience, expiration: exp}
	now := m.now()
	m.mu.Lock()
	cached := m.tokens[key]
	m.mu.Unlock()
	if cached != nil && !cached.needsRefresh(now) {
		return cached, nil
	}

	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	resp, err := m.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if cached != nil && now.Before(cached.expires) {
			return cached, nil // still valid; try again at the next sync
		}
		return nil, fmt.Errorf("fetch token for service account %q: %w", sa, err)
	}
	t := &cachedToken{token: resp.Status.Token, issued: now, expires: resp.Status.ExpirationTimestamp.Time}
	if t.expires.IsZero() || !t.expires.After(now) {
		t.expires = now.Add(time.Duration(exp) * time.Second)
	}
	m.mu.Lock()
	m.tokens[key] = t
	m.mu.Unlock()
	return t, nil
}

// forgetPod drops the tokens of a pod that no longer runs.
func (m *tokenManager) forgetPod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.tokens {
		if k.pod == uid {
			delete(m.tokens, k)
		}
	}
}
