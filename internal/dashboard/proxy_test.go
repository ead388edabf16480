package dashboard

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func stringsReader(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}

func TestProxyActsAsTheCaller(t *testing.T) {
	c := startCluster(t)
	d := newDashboard(t, c, false)
	tests := []struct {
		name, path, token string
		want              int
	}{
		{"viewer lists pods", "/api/v1/pods", viewerToken, http.StatusOK},
		{"viewer lists deployments", "/apis/apps/v1/deployments", viewerToken, http.StatusOK},
		{"discovery", "/api", viewerToken, http.StatusOK},
		{"bad token", "/api/v1/pods", "nonsense", http.StatusUnauthorized},
		// The dashboard's own identity may read metrics; its callers gain
		// nothing from that.
		{"anonymous gets no dashboard rights", "/apis/metrics.k8s.io/v1beta1/pods", "", http.StatusForbidden},
		{"viewer gets no dashboard rights", "/apis/metrics.k8s.io/v1beta1/pods", viewerToken, http.StatusForbidden},
		{"viewer may not read secrets elsewhere", "/apis/rbac.authorization.k8s.io/v1/clusterroles", viewerToken, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := call(t, d, http.MethodGet, tt.path, tt.token, "")
			if resp.StatusCode != tt.want {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("GET %s = %d, want %d: %s", tt.path, resp.StatusCode, tt.want, body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
				t.Errorf("proxied response CSP = %q, want a sandbox", csp)
			}
		})
	}
}

func TestProxyReadOnlyUnlessWritable(t *testing.T) {
	c := startCluster(t)
	body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}}`
	path := "/api/v1/namespaces/default/configmaps"

	resp := call(t, newDashboard(t, c, false), http.MethodPost, path, adminToken, body)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("read-only POST = %d, want 405", resp.StatusCode)
	}
	if _, err := c.admin.CoreV1().ConfigMaps("default").Get(context.Background(), "cm", metav1.GetOptions{}); err == nil {
		t.Fatal("a read-only dashboard created the ConfigMap")
	}

	resp = call(t, newDashboard(t, c, true), http.MethodPost, path, adminToken, body)
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("writable POST = %d, want 201: %s", resp.StatusCode, b)
	}
	// Writable still means the caller's rights: the viewer may not write.
	resp = call(t, newDashboard(t, c, true), http.MethodDelete, path+"/cm", viewerToken, "")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer DELETE through a writable dashboard = %d, want 403", resp.StatusCode)
	}
}

func TestProxyRefusesStreamsAndProxies(t *testing.T) {
	c := startCluster(t)
	d := newDashboard(t, c, true)
	for _, path := range []string{
		"/api/v1/namespaces/default/pods/web/exec?command=sh",
		"/api/v1/namespaces/default/pods/web/attach",
		"/api/v1/namespaces/default/pods/web/portforward",
		"/api/v1/namespaces/default/services/web/proxy/index.html",
		"/api/v1/nodes/n1/proxy/metrics",
		"/api/v1/namespaces/default/pods/web%2Fexec",
	} {
		if resp := call(t, d, http.MethodGet, path, adminToken, ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s = %d, want 403", path, resp.StatusCode)
		}
	}
}

func TestSubresource(t *testing.T) {
	tests := map[string]string{
		"/api/v1/pods":                                    "",
		"/api/v1/namespaces/default/pods":                 "",
		"/api/v1/namespaces/default/pods/proxy":           "", // a pod named proxy
		"/api/v1/namespaces/default/pods/web/log":         "log",
		"/api/v1/namespaces/default/pods/web/exec":        "exec",
		"/api/v1/nodes/n1/proxy":                          "proxy",
		"/api/v1/nodes/proxy":                             "",
		"/api/v1/namespaces/default/status":               "status",
		"/apis/apps/v1/namespaces/ns/deployments/d/scale": "scale",
		"/apis/apps/v1/deployments":                       "",
		"/apis/apps":                                      "",
		"/api":                                            "",
	}
	for path, want := range tests {
		if got := subresource(path); got != want {
			t.Errorf("subresource(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestPageHeaders(t *testing.T) {
	c := startCluster(t)
	d := newDashboard(t, c, false)
	for path, wantType := range map[string]string{"/": "text/html", "/app.js": "javascript", "/style.css": "text/css"} {
		resp := call(t, d, http.MethodGet, path, "", "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), wantType) {
			t.Errorf("GET %s = %d %q, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), wantType)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s CSP = %q", path, csp)
		}
	}
}
