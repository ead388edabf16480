package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConfigLister lists the current webhook configurations, typically from
// the server's watch caches. The objects are shared and must not be
// modified; a changed configuration is a new object.
type ConfigLister interface {
	MutatingWebhookConfigurations() []*admissionregistrationv1.MutatingWebhookConfiguration
	ValidatingWebhookConfigurations() []*admissionregistrationv1.ValidatingWebhookConfiguration
}

// NamespaceGetter reads a namespace, for namespaceSelectors. A missing
// namespace is an apierrors NotFound error.
type NamespaceGetter interface {
	GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

// hookCache keeps the hooks built from the last set of configurations, so
// selectors and CEL programs are compiled once per change, not per request.
type hookCache struct {
	mu    sync.Mutex
	key   string
	hooks []*hook
}

// cachedHooks returns the hooks of configs, ordered by configuration name
// and then webhook order, as upstream's configuration source does.
func cachedHooks[T metav1.Object](c *hookCache, configs []T, hooksOf func(T) []*hook) []*hook {
	configs = slices.Clone(configs)
	slices.SortFunc(configs, func(a, b T) int { return strings.Compare(a.GetName(), b.GetName()) })
	var key strings.Builder
	for _, cfg := range configs {
		// The pointer tells a replaced object apart even when a fake or a
		// test leaves resourceVersion unset.
		fmt.Fprintf(&key, "%p/%s/%s;", any(cfg), cfg.GetUID(), cfg.GetResourceVersion())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hooks != nil && c.key == key.String() {
		return c.hooks
	}
	hooks := []*hook{}
	for _, cfg := range configs {
		hooks = append(hooks, hooksOf(cfg)...)
	}
	c.key, c.hooks = key.String(), hooks
	return hooks
}
