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
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(defaultTokenExpiration)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	key := tokenKey{pod: pod.UID, serviceAccount: sa, audience: src.Audience, expiration: exp}
	now := m.now()
	m.mu.Lock()
	cached := m.tokens[key]
	m.mu.Unlock()
	if cached != nil && !cached.needsRefresh(now) {
		return cached.token, nil
	}

	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	resp, err := m.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if cached != nil && now.Before(cached.expires) {
			return cached.token, nil // still valid; try again at the next sync
		}
		return "", fmt.Errorf("fetch token for service account %q: %w", sa, err)
	}
	t := &cachedToken{token: resp.Status.Token, issued: now, expires: resp.Status.ExpirationTimestamp.Time}
	if t.expires.IsZero() || !t.expires.After(now) {
		t.expires = now.Add(time.Duration(exp) * time.Second)
	}
	m.mu.Lock()
	m.tokens[key] = t
	m.mu.Unlock()
	return t.token, nil
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
