package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestEnsureIsStableAndCoversHosts(t *testing.T) {
	dir := t.TempDir()
	a, err := Ensure(dir, Options{Hosts: []string{"10.0.0.7"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Ensure(dir, Options{Hosts: []string{"10.0.0.7"}})
	if err != nil {
		t.Fatal(err)
	}
	if !a.CA.Equal(b.CA) || string(a.AdminCertPEM) != string(b.AdminCertPEM) {
		t.Fatal("second Ensure created a new CA or admin certificate")
	}
	leaf, _ := x509.ParseCertificate(a.Serving.Certificate[0])
	for _, h := range []string{"localhost", "127.0.0.1", "10.0.0.7", "kubernetes.default.svc"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("serving cert does not cover %s: %v", h, err)
		}
	}
	c, err := Ensure(dir, Options{Hosts: []string{"skiff.example"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(c.Serving.Certificate[0])
	if err := leaf.VerifyHostname("skiff.example"); err != nil {
		t.Fatalf("serving cert not re-issued for a new host: %v", err)
	}
	blk, _ := pem.Decode(a.AdminCertPEM)
	admin, _ := x509.ParseCertificate(blk.Bytes)
	if len(admin.Subject.Organization) != 1 || admin.Subject.Organization[0] != "system:masters" {
		t.Fatalf("admin groups = %v", admin.Subject.Organization)
	}
}

func TestKubeconfigAuthenticatesOverTLS(t *testing.T) {
	dir := t.TempDir()
	b, err := Ensure(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client cert", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = ServerTLSConfig(b)
	srv.StartTLS()
	defer srv.Close()

	path := filepath.Join(dir, "admin.kubeconfig")
	if err := WriteKubeconfig(path, srv.URL, b.CAPEM, b.AdminCertPEM, b.AdminKeyPEM, "admin"); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "skiff-admin" {
		t.Fatalf("server saw %q", body)
	}
	// A client that does not trust the CA must fail the handshake.
	if _, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}).Get(srv.URL); err == nil {
		t.Fatal("untrusted client connected")
	}
}
