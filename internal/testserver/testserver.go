// Package testserver starts an in-process API server on embedded etcd in a
// temporary directory, for integration tests of the components that talk
// to it through client-go.
package testserver

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/storage"
)

// Server is a running test API server.
type Server struct {
	URL    string
	Config *rest.Config
	Client kubernetes.Interface
}

// Start runs a server for the duration of t.
func Start(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := storage.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	_, cidr, _ := net.ParseCIDR("10.96.0.0/16")
	s, err := apiserver.New(apiserver.Config{
		Store: storage.NewStore(e.Client), Resources: apis.All(), GitVersion: "v1.37.2+skiff",
		ServiceCIDR: cidr, PublicAddress: net.ParseIP("127.0.0.1"), PublicPort: 6443,
	})
	if err != nil {
		cancel()
		e.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-done
		e.Close()
	})
	cfg := &rest.Config{Host: hs.URL, QPS: -1}
	return &Server{URL: hs.URL, Config: cfg, Client: kubernetes.NewForConfigOrDie(cfg)}
}
