package ingress

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestRouteMatching(t *testing.T) {
	be := func(name string) *backend { return &backend{service: name} }
	exact, prefix, impl := networkingv1.PathTypeExact, networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific
	tab := &table{def: be("default")}
	tab.rules = []rule{
		{host: "shop.example", path: "/cart", pathType: exact, backend: be("cart-exact")},
		{host: "shop.example", path: "/api/v1", pathType: prefix, backend: be("api-v1")},
		{host: "shop.example", path: "/api", pathType: prefix, backend: be("api")},
		{host: "*.example", path: "/", pathType: prefix, backend: be("wildcard")},
		{host: "", path: "/static", pathType: impl, backend: be("static")},
	}
	for _, tc := range []struct{ host, path, want string }{
		{"shop.example", "/cart", "cart-exact"},
		{"shop.example", "/cart/items", "default"},  // Exact only
		{"shop.example", "/api/v1/users", "api-v1"}, // longest prefix
		{"shop.example", "/api/v2", "api"},
		{"shop.example", "/apiary", "default"},     // prefixes match whole elements
		{"SHOP.example:8443", "/api", "api"},       // case and port ignored
		{"blog.example", "/anything", "wildcard"},  // one-label wildcard
		{"a.b.example", "/anything", "default"},    // not two labels
		{"other.test", "/static/app.js", "static"}, // any host
		{"other.test", "/", "default"},
	} {
		got := tab.match(tc.host, tc.path)
		if got == nil || got.service != tc.want {
			name := "<nil>"
			if got != nil {
				name = got.service
			}
			t.Errorf("%s%s routed to %s, want %s", tc.host, tc.path, name, tc.want)
		}
	}
}
