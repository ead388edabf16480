package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRingKeepsTheLastSamplesInOrder(t *testing.T) {
	r := newRing(3)
	base := time.Unix(1000, 0)
	for i := range 5 {
		r.add(Sample{Time: base.Add(time.Duration(i) * time.Second)})
	}
	got := r.since(base.Add(-time.Hour))
	if len(got) != 3 {
		t.Fatalf("kept %d samples, want 3", len(got))
	}
	for i, s := range got {
		if want := base.Add(time.Duration(i+2) * time.Second); !s.Time.Equal(want) {
			t.Errorf("sample %d at %v, want %v", i, s.Time, want)
		}
	}
	if got := r.since(base.Add(3 * time.Second)); len(got) != 1 || !got[0].Time.Equal(base.Add(4*time.Second)) {
		t.Errorf("since(+3s) = %v, want only the +4s sample", got)
	}
}

func TestSamplerReadsMetricsAPI(t *testing.T) {
	var auth string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/apis/metrics.k8s.io/v1beta1/nodes":
			io.WriteString(w, `{"items":[{"metadata":{"name":"n1"},"usage":{"cpu":"1500m","memory":"2Gi"}}]}`)
		case "/apis/metrics.k8s.io/v1beta1/pods":
			io.WriteString(w, `{"items":[{"metadata":{"name":"web","namespace":"default"},"containers":[
				{"name":"a","usage":{"cpu":"250m","memory":"64Mi"}},{"name":"b","usage":{"cpu":"5000000n","memory":"1Mi"}}]}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	u, _ := url.Parse(api.URL)
	client := &http.Client{Transport: bearer{"own", http.DefaultTransport}}
	s := newSampler(u, client, 15*time.Second, time.Hour, slog.New(slog.DiscardHandler))
	now := time.Unix(10000, 0)
	s.now = func() time.Time { return now }
	if err := s.sampleOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if auth != "Bearer own" {
		t.Errorf("sampler sent Authorization %q, want its own token", auth)
	}
	got := s.recent()
	if len(got) != 1 {
		t.Fatalf("%d samples, want 1", len(got))
	}
	if n := got[0].Nodes["n1"]; n.CPU != 1.5 || n.Memory != 2<<30 {
		t.Errorf("node usage = %+v, want 1.5 cores, 2Gi", n)
	}
	if p := got[0].Pods["default/web"]; p.CPU != 0.255 || p.Memory != 65<<20 {
		t.Errorf("pod usage = %+v, want the containers' sum (0.255 cores, 65Mi)", p)
	}
	// An hour later the sample has aged out.
	now = now.Add(time.Hour + time.Second)
	if got := s.recent(); len(got) != 0 {
		t.Errorf("after an hour: %d samples, want 0", len(got))
	}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func TestUsageNeedsTheCallersMetricsAccess(t *testing.T) {
	c := startCluster(t)
	d := newDashboard(t, c, false)
	d.sampler.samples.add(Sample{Time: time.Now(), Nodes: map[string]Usage{"n1": {CPU: 0.5, Memory: 1 << 20}}, Pods: map[string]Usage{}})
	tests := []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"nonsense", http.StatusUnauthorized},
		{viewerToken, http.StatusForbidden},
		{adminToken, http.StatusOK},
	}
	for _, tt := range tests {
		resp := call(t, d, http.MethodGet, "/dashboard/usage", tt.token, "")
		if resp.StatusCode != tt.want {
			t.Errorf("usage with token %q = %d, want %d", tt.token, resp.StatusCode, tt.want)
			continue
		}
		if tt.want != http.StatusOK {
			continue
		}
		var body usageResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if body.IntervalSeconds != 15 || len(body.Samples) != 1 || body.Samples[0].Nodes["n1"].CPU != 0.5 {
			t.Errorf("usage = %+v, want the one recorded sample every 15 s", body)
		}
	}
}

func TestEnsureRBACLetsTheDashboardReadMetricsOnly(t *testing.T) {
	c := startCluster(t) // runs EnsureRBAC once
	ctx := context.Background()
	if err := EnsureRBAC(ctx, c.admin); err != nil {
		t.Fatalf("second EnsureRBAC: %v", err)
	}
	for _, tt := range []struct {
		group, resource, verb string
		want                  bool
	}{
		{"metrics.k8s.io", "pods", "list", true},
		{"metrics.k8s.io", "nodes", "list", true},
		{"", "pods", "list", false},
		{"", "secrets", "get", false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: User, ResourceAttributes: &authorizationv1.ResourceAttributes{Group: tt.group, Resource: tt.resource, Verb: tt.verb},
		}}
		got, err := c.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tt.want {
			t.Errorf("%s may %s %s.%s: %v, want %v", User, tt.verb, tt.resource, tt.group, got.Status.Allowed, tt.want)
		}
	}
}
