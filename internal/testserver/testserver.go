// Package testserver starts an in-process API server on embedded etcd in a
// temporary directory, for integration tests of the API server and of the
// components that talk to it through client-go.
package testserver

import (
	"context"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/storage"
)

// Server is a running test API server.
type Server struct {
	URL    string
	Config *rest.Config
	Client kubernetes.Interface
	// API is the server itself, for tests that call it directly (e.g. a
	// second Bootstrap).
	API *apiserver.Server
	// Etcd is the embedded etcd, for tests that read raw keys.
	Etcd *storage.Embedded

	stop func()
}

// Stop shuts the server and its etcd down before the test ends, so that
// another server can start on the same DataDir. It is safe to call twice.
func (s *Server) Stop() { s.stop() }

// ClientWithToken is a client that sends token as its bearer token.
func (s *Server) ClientWithToken(token string) kubernetes.Interface {
	cfg := rest.CopyConfig(s.Config)
	cfg.BearerToken = token
	return kubernetes.NewForConfigOrDie(cfg)
}

// Options adjust the server; the zero value is a sensible default.
type Options struct {
	// ServiceCIDR defaults to 10.96.0.0/16.
	ServiceCIDR string
	// WatchCacheHistory defaults to the API server's own default.
	WatchCacheHistory int
	// DataDir is etcd's directory; empty means a fresh temporary one. Set
	// it to restart on the same data after Stop.
	DataDir string
	// StoreOptions configure the storage layer (e.g. encryption at rest).
	StoreOptions []storage.StoreOption
	// Authenticator identifies callers; nil admits every request.
	Authenticator authn.Authenticator
	// AccessControl turns on authorization and the identity admission
	// plugins, as in apiserver.Config.
	AccessControl bool
	// ServiceAccountTokens enables TokenRequest and ServiceAccount token
	// authentication; nil disables them.
	ServiceAccountTokens *apiserver.ServiceAccountTokens
	// FlowControl turns on API Priority and Fairness (off by default).
	FlowControl apiserver.FlowControlConfig
	// Aggregation configures the proxy to extension API servers.
	Aggregation apiserver.AggregationConfig
}

// Start runs a server with default options for the duration of t.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith runs a server with opts for the duration of t.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ServiceCIDR == "" {
		opts.ServiceCIDR = "10.96.0.0/16"
	}
	_, cidr, err := net.ParseCIDR(opts.ServiceCIDR)
	if err != nil {
		t.Fatal(err)
	}
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	e, err := storage.StartEmbedded(ctx, opts.DataDir)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s, err := apiserver.New(apiserver.Config{
		Store: storage.NewStore(e.Client, opts.StoreOptions...), Resources: apis.All(), GitVersion: "v1.37.2+skiff",
		ServiceCIDR: cidr, PublicAddress: net.ParseIP("127.0.0.1"), PublicPort: 6443,
		WatchCacheHistory:    opts.WatchCacheHistory,
		Authenticator:        opts.Authenticator,
		AccessControl:        opts.AccessControl,
		ServiceAccountTokens: opts.ServiceAccountTokens,
		FlowControl:          opts.FlowControl,
		Aggregation:          opts.Aggregation,
	})
	if err != nil {
		cancel()
		e.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	hs := httptest.NewServer(s)
	stop := sync.OnceFunc(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-done
		e.Close()
	})
	t.Cleanup(stop)
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	s.MarkReady()
	cfg := &rest.Config{Host: hs.URL, QPS: -1}
	return &Server{URL: hs.URL, Config: cfg, Client: kubernetes.NewForConfigOrDie(cfg), API: s, Etcd: e, stop: stop}
}

// Eventually polls cond until it holds, failing the test after 20 s.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
