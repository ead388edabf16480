package dashboard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// Tokens the test API server accepts.
const (
	adminToken     = "admin-token"     // system:masters
	viewerToken    = "viewer-token"    // may read core, apps and batch objects, not metrics
	dashboardToken = "dashboard-token" // the dashboard's own identity
)

// cluster is a test API server with access control and the tokens above.
type cluster struct {
	*testserver.Server
	admin kubernetes.Interface
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	users := map[string]*authn.User{
		adminToken:     {Name: "admin", Groups: []string{"system:masters", "system:authenticated"}},
		viewerToken:    {Name: "viewer", Groups: []string{"system:authenticated"}},
		dashboardToken: {Name: User, Groups: []string{"system:authenticated"}},
	}
	ts := testserver.StartWith(t, testserver.Options{
		AccessControl: true,
		Authenticator: authn.NewBearerToken(func(tok string) (*authn.User, bool) { u, ok := users[tok]; return u, ok }),
	})
	c := &cluster{Server: ts, admin: ts.ClientWithToken(adminToken)}
	ctx := context.Background()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "test-viewer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"", "apps", "batch"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := c.admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-viewer"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "viewer"}},
	}
	if _, err := c.admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := EnsureRBAC(ctx, c.admin); err != nil {
		t.Fatal(err)
	}
	return c
}

// newDashboard builds a dashboard on c with the dashboard's own token.
func newDashboard(t *testing.T, c *cluster, writable bool) *Dashboard {
	t.Helper()
	d, err := New(Config{RESTConfig: &rest.Config{Host: c.URL, BearerToken: dashboardToken}, Writable: writable})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// call sends one request to h with token (none when empty).
func call(t *testing.T, h http.Handler, method, path, token, body string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(method, srv.URL+path, stringsReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
