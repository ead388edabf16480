package kubelet

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// reviewServer answers TokenReviews and SubjectAccessReviews on a fake
// clientset: tokens maps a token to its user, allow decides SARs.
type reviewServer struct {
	mu       sync.Mutex
	tokens   map[string]authenticationv1.UserInfo
	allow    func(authorizationv1.SubjectAccessReviewSpec) bool
	sarErr   error
	sars     []authorizationv1.SubjectAccessReviewSpec
	tokenReq int
}

func (rs *reviewServer) client() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		rs.tokenReq++
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if u, ok := rs.tokens[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: u}
		}
		return true, tr, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.sarErr != nil {
			return true, nil, rs.sarErr
		}
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		rs.sars = append(rs.sars, sar.Spec)
		sar.Status.Allowed = rs.allow(sar.Spec)
		return true, sar, nil
	})
	return c
}

func (rs *reviewServer) sarCount() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.sars)
}

func newTestAuth(rs *reviewServer) (*apiAuth, http.Handler) {
	a := newAPIAuth(rs.client(), "node1", slog.New(slog.DiscardHandler))
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "served") })
	return a, a.wrap(ok)
}

type credential func(r *http.Request)

func withCert(cn string, orgs ...string) credential {
	return func(r *http.Request) {
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: orgs}}
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
}

func withToken(tok string) credential {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func do(h http.Handler, method, path string, cred credential) (int, string) {
	r := httptest.NewRequest(method, path, nil)
	if cred != nil {
		cred(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestKubeletAPIAuth(t *testing.T) {
	rs := &reviewServer{
		tokens: map[string]authenticationv1.UserInfo{
			"sa-token": {Username: "system:serviceaccount:mon:scraper", UID: "u-1", Groups: []string{"system:serviceaccounts"},
				Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"p"}}},
		},
		allow: func(s authorizationv1.SubjectAccessReviewSpec) bool {
			switch s.User {
			case "kube-apiserver-kubelet-client":
				return true
			case "system:serviceaccount:mon:scraper":
				return s.ResourceAttributes.Subresource == "metrics"
			}
			return false
		},
	}
	_, h := newTestAuth(rs)

	for _, tc := range []struct {
		name         string
		method, path string
		cred         credential
		code         int
		body         string
	}{
		{"healthz is open", "GET", "/healthz", nil, 200, "served"},
		{"no credentials", "GET", "/pods", nil, 401, "Unauthorized\n"},
		{"unknown token", "GET", "/pods", withToken("forged"), 401, "Unauthorized\n"},
		{"api server cert exec", "POST", "/exec/ns/p/c", withCert("kube-apiserver-kubelet-client", "system:masters"), 200, "served"},
		{"token metrics allowed", "GET", "/metrics/resource", withToken("sa-token"), 200, "served"},
		{"token stats denied", "GET", "/stats/summary", withToken("sa-token"), 403,
			"Forbidden (user=system:serviceaccount:mon:scraper, verb=get, resource=nodes, subresource=stats)\n"},
		{"cert without rights", "GET", "/containerLogs/ns/p/c", withCert("jane"), 403,
			"Forbidden (user=jane, verb=get, resource=nodes, subresource=proxy)\n"},
		{"csi controller is nodes/proxy", "POST", "/csi/d.example.com/controller/createVolume", withToken("sa-token"), 403,
			"Forbidden (user=system:serviceaccount:mon:scraper, verb=create, resource=nodes, subresource=proxy)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(h, tc.method, tc.path, tc.cred)
			if code != tc.code || body != tc.body {
				t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, code, body, tc.code, tc.body)
			}
		})
	}

	// The reviews carried the caller and the node's attributes.
	var sawExec, sawToken bool
	for _, s := range rs.sars {
		ra := s.ResourceAttributes
		if ra == nil || ra.Resource != "nodes" || ra.Name != "node1" || ra.Group != "" {
			t.Errorf("SAR resource attributes = %+v", ra)
			continue
		}
		if s.User == "kube-apiserver-kubelet-client" && ra.Verb == "create" && ra.Subresource == "proxy" &&
			len(s.Groups) == 1 && s.Groups[0] == "system:masters" {
			sawExec = true
		}
		if s.User == "system:serviceaccount:mon:scraper" && s.UID == "u-1" && s.Extra["authentication.kubernetes.io/pod-name"][0] == "p" {
			sawToken = true
		}
	}
	if !sawExec || !sawToken {
		t.Errorf("SARs %+v: exec review %v, token user review %v", rs.sars, sawExec, sawToken)
	}
}

func TestKubeletAPIAuthCaches(t *testing.T) {
	allowed := map[string]bool{"alice": true}
	rs := &reviewServer{
		tokens: map[string]authenticationv1.UserInfo{"t": {Username: "bob"}},
		allow:  func(s authorizationv1.SubjectAccessReviewSpec) bool { return allowed[s.User] },
	}
	a, h := newTestAuth(rs)
	now := time.Now()
	a.decisions.now = func() time.Time { return now }

	for range 3 {
		do(h, "GET", "/pods", withCert("alice"))
		do(h, "GET", "/pods", withToken("t"))
	}
	if n := rs.sarCount(); n != 2 {
		t.Fatalf("%d SARs for repeated requests, want 2 (one per user)", n)
	}
	if rs.tokenReq != 1 {
		t.Errorf("%d token reviews for one token, want 1", rs.tokenReq)
	}
	// A different subresource is a different decision.
	do(h, "GET", "/stats/summary", withCert("alice"))
	if n := rs.sarCount(); n != 3 {
		t.Errorf("%d SARs, want 3", n)
	}

	// Denials are remembered for 30 s, approvals for 5 min.
	allowed["bob"] = true
	now = now.Add(29 * time.Second)
	if code, _ := do(h, "GET", "/pods", withToken("t")); code != 403 {
		t.Errorf("bob within 30 s of the denial: %d, want the cached 403", code)
	}
	now = now.Add(2 * time.Second)
	if code, _ := do(h, "GET", "/pods", withToken("t")); code != 200 {
		t.Errorf("bob after 30 s: %d, want 200", code)
	}
	allowed["alice"] = false
	now = now.Add(4 * time.Minute)
	if code, _ := do(h, "GET", "/pods", withCert("alice")); code != 200 {
		t.Errorf("alice within 5 min of the approval: %d, want the cached 200", code)
	}
	now = now.Add(2 * time.Minute)
	if code, _ := do(h, "GET", "/pods", withCert("alice")); code != 403 {
		t.Errorf("alice after 5 min: %d, want 403", code)
	}
}

func TestKubeletAPIAuthReviewError(t *testing.T) {
	rs := &reviewServer{sarErr: errors.New("connection refused"), allow: func(authorizationv1.SubjectAccessReviewSpec) bool { return true }}
	_, h := newTestAuth(rs)
	code, body := do(h, "GET", "/pods", withCert("alice"))
	if code != 500 || body != "Authorization error (user=alice, verb=get, resource=nodes, subresource=proxy)\n" {
		t.Errorf("= %d %q", code, body)
	}
	// Errors are not cached.
	rs.mu.Lock()
	rs.sarErr = nil
	rs.mu.Unlock()
	if code, _ := do(h, "GET", "/pods", withCert("alice")); code != 200 {
		t.Errorf("after the API recovered: %d", code)
	}
}

func TestRequestAttributes(t *testing.T) {
	for path, want := range map[string]string{
		"/stats":                "stats",
		"/stats/summary":        "stats",
		"/statsx":               "proxy",
		"/metrics":              "metrics",
		"/metrics/cadvisor":     "metrics",
		"/metrics/resource":     "metrics",
		"/logs/":                "log",
		"/logs/messages":        "log",
		"/spec/":                "spec",
		"/pods":                 "proxy",
		"/exec/ns/p/c":          "proxy",
		"/attach/ns/p/c":        "proxy",
		"/portForward/ns/p":     "proxy",
		"/containerLogs/ns/p/c": "proxy",
		"/run/ns/p/c":           "proxy",
		"/configz":              "proxy",
	} {
		if got := requestSubresource(path); got != want {
			t.Errorf("subresource(%s) = %s, want %s", path, got, want)
		}
	}
	for method, want := range map[string]string{"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"} {
		if got := requestVerb(method); got != want {
			t.Errorf("verb(%s) = %s, want %s", method, got, want)
		}
	}
}

func TestExpiringLRUBound(t *testing.T) {
	c := newExpiringLRU[int](2)
	c.add("a", 1, time.Minute)
	c.add("b", 2, time.Minute)
	c.get("a") // b is now the least recently used
	c.add("c", 3, time.Minute)
	if _, ok := c.get("b"); ok {
		t.Error("least recently used entry kept")
	}
	if v, ok := c.get("a"); !ok || v != 1 {
		t.Error("recently used entry evicted")
	}
	if c.len() != 2 {
		t.Errorf("len = %d", c.len())
	}
}
