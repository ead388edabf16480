package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

// tokenServer issues numbered tokens "<serviceaccount>-<n>" through a fake
// clientset's TokenRequest, valid for what was asked.
type tokenServer struct {
	client *fake.Clientset
	clock  *testingclock.FakeClock

	mu       sync.Mutex
	issued   map[string]int
	fail     error
	requests []*authenticationv1.TokenRequest
}

func newTokenServer(clk *testingclock.FakeClock) *tokenServer {
	ts := &tokenServer{client: fake.NewClientset(), clock: clk, issued: map[string]int{}}
	ts.client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if ts.fail != nil {
			return true, nil, ts.fail
		}
		name := a.(k8stesting.CreateActionImpl).Name
		req := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		ts.requests = append(ts.requests, req)
		ts.issued[name]++
		req.Status = authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprintf("%s-%d", name, ts.issued[name]),
			ExpirationTimestamp: metav1.NewTime(ts.clock.Now().Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second)),
		}
		return true, req, nil
	})
	return ts
}

func (ts *tokenServer) setFail(err error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.fail = err
}

func (ts *tokenServer) count(name string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.issued[name]
}

// apiRecorder is an API server that records the Authorization header of
// every request and answers pod lists; status makes it answer otherwise.
type apiRecorder struct {
	*httptest.Server
	mu     sync.Mutex
	auth   []string
	paths  []string
	status int
}

func newAPIRecorder(t *testing.T) *apiRecorder {
	r := &apiRecorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.paths = append(r.paths, req.Method+" "+req.URL.Path)
		status := r.status
		r.status = 0
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if status != 0 {
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":%d}`, status)
			return
		}
		_, _ = io.WriteString(w, `{"kind":"PodList","apiVersion":"v1","items":[]}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *apiRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.auth) == 0 {
		return ""
	}
	return r.auth[len(r.auth)-1]
}

func (r *apiRecorder) hits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.auth)
}

func (r *apiRecorder) failNext(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestClientBuilderCreatesServiceAccountAndSendsToken(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tokens := newTokenServer(clk)
	api := newAPIRecorder(t)
	// The manager's own credentials must not reach the controllers' clients.
	base := &rest.Config{Host: api.URL, BearerToken: "manager-secret", QPS: -1}
	b := newClientBuilder(base, tokens.client, clk, quietLog())

	client, err := b.Client("replicaset-controller")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if tokens.count("replicaset-controller") != 0 {
		t.Fatal("token requested before the client was used")
	}
	if _, err := client.CoreV1().Pods("x").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := api.last(); got != "Bearer replicaset-controller-1" {
		t.Errorf("Authorization = %q, want the service account's token", got)
	}
	if _, err := tokens.client.CoreV1().ServiceAccounts("kube-system").Get(ctx, "replicaset-controller", metav1.GetOptions{}); err != nil {
		t.Errorf("service account not created: %v", err)
	}
	if len(tokens.requests) != 1 || *tokens.requests[0].Spec.ExpirationSeconds != 3600 || len(tokens.requests[0].Spec.Audiences) != 0 {
		t.Errorf("token requests = %+v, want one for an hour with the default audience", tokens.requests)
	}

	// A second identity has its own token; the first keeps its own.
	other, err := b.Client("deployment-controller")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = other.CoreV1().Pods("x").List(ctx, metav1.ListOptions{})
	if got := api.last(); got != "Bearer deployment-controller-1" {
		t.Errorf("second identity sent %q", got)
	}
	_, _ = client.CoreV1().Pods("x").List(ctx, metav1.ListOptions{})
	if got := api.last(); got != "Bearer replicaset-controller-1" {
		t.Errorf("first identity sent %q after the second was created", got)
	}
	if got := tokens.count("replicaset-controller"); got != 1 {
		t.Errorf("%d token requests, want the token reused", got)
	}
}

func TestClientBuilderUsesExistingServiceAccount(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	tokens := newTokenServer(clk)
	api := newAPIRecorder(t)
	ctx := context.Background()
	b := newClientBuilder(&rest.Config{Host: api.URL}, tokens.client, clk, quietLog())
	// Two clients of one identity share its token source.
	for range 2 {
		c, err := b.Client("job-controller")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CoreV1().Pods("x").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := tokens.count("job-controller"); got != 1 {
		t.Errorf("%d token requests for two clients, want 1", got)
	}
	creates := 0
	for _, a := range tokens.client.Actions() {
		if a.GetVerb() == "create" && a.GetSubresource() == "" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("service account created %d times, want once", creates)
	}
}

func TestClientBuilderRefreshesBeforeExpiry(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := testingclock.NewFakeClock(start)
	tokens := newTokenServer(clk)
	api := newAPIRecorder(t)
	b := newClientBuilder(&rest.Config{Host: api.URL}, tokens.client, clk, quietLog())
	client, err := b.Client("node-controller")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	call := func() {
		t.Helper()
		_, _ = client.CoreV1().Pods("x").List(ctx, metav1.ListOptions{})
	}
	expect := func(step string, auth string, hits int) {
		t.Helper()
		if got := api.hits(); got != hits {
			t.Fatalf("%s: %d requests reached the server, want %d", step, got, hits)
		}
		if auth != "" && api.last() != auth {
			t.Fatalf("%s: Authorization = %q, want %q", step, api.last(), auth)
		}
	}

	call()
	expect("first use", "Bearer node-controller-1", 1)
	clk.SetTime(start.Add(47 * time.Minute))
	call()
	expect("before 80% of the lifetime", "Bearer node-controller-1", 2)
	clk.SetTime(start.Add(49 * time.Minute))
	call()
	expect("past 80% of the lifetime", "Bearer node-controller-2", 3)

	// Token 2 is due at 49m+48m; when renewal fails the old token serves
	// until it expires, and renewal is retried only after a backoff.
	tokens.setFail(errors.New("apiserver unavailable"))
	clk.SetTime(start.Add(98 * time.Minute))
	call()
	expect("failed renewal", "Bearer node-controller-2", 4)
	call()
	call()
	if got := tokens.count("node-controller"); got != 2 {
		t.Fatalf("issued %d tokens", got)
	}
	failedAttempts := func() int {
		n := 0
		for _, a := range tokens.client.Actions() {
			if a.GetSubresource() == "token" {
				n++
			}
		}
		return n
	}
	if got := failedAttempts(); got != 3 {
		t.Errorf("%d token requests, want 3: no retry within the backoff", got)
	}
	clk.Step(time.Second)
	call()
	if got := failedAttempts(); got != 4 {
		t.Errorf("%d token requests after the backoff, want 4", got)
	}
	// Expired and still no renewal: the request does not go out at all.
	clk.SetTime(start.Add(110 * time.Minute))
	hits := api.hits()
	call()
	expect("expired token", "", hits)

	tokens.setFail(nil)
	clk.Step(maxRetry)
	call()
	expect("recovered", "Bearer node-controller-3", hits+1)
}

func TestClientBuilderReplacesRejectedToken(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	tokens := newTokenServer(clk)
	api := newAPIRecorder(t)
	b := newClientBuilder(&rest.Config{Host: api.URL}, tokens.client, clk, quietLog())
	client, err := b.Client("namespace-controller")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api.failNext(http.StatusUnauthorized)
	if _, err := client.CoreV1().Pods("x").List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("want the 401 reported")
	}
	if _, err := client.CoreV1().Pods("x").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := api.last(); got != "Bearer namespace-controller-2" {
		t.Errorf("after a 401 the client sent %q, want a new token", got)
	}
}
