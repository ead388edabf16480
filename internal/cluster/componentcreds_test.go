package cluster

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
)

func testServer(t *testing.T, dir string) *Server {
	t.Helper()
	bundle, err := pki.Ensure(filepath.Join(dir, "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &Server{URL: "https://127.0.0.1:6443", pki: bundle}
}

func kubeconfigCert(t *testing.T, path, user string) *x509.Certificate {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	auth := kc.AuthInfos[user]
	if auth == nil {
		t.Fatalf("%s has no user %s", path, user)
	}
	block, _ := pem.Decode(auth.ClientCertificateData)
	if block == nil {
		t.Fatal("no certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestComponentConfigIssuesAndReusesCertificate(t *testing.T) {
	dir := t.TempDir()
	s := testServer(t, dir)
	path := filepath.Join(dir, "scheduler.kubeconfig")

	rc, err := s.componentConfig(dir, "scheduler.kubeconfig", schedulerUser)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != s.URL || rc.QPS != -1 || len(rc.CertData) == 0 || len(rc.KeyData) == 0 {
		t.Errorf("config = host %q qps %v cert %d key %d", rc.Host, rc.QPS, len(rc.CertData), len(rc.KeyData))
	}
	first := kubeconfigCert(t, path, schedulerUser)
	if first.Subject.CommonName != schedulerUser || len(first.Subject.Organization) != 0 {
		t.Errorf("subject = %+v, want CN %s and no organizations", first.Subject, schedulerUser)
	}
	if _, err := first.Verify(x509.VerifyOptions{Roots: s.pki.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify against the cluster CA: %v", err)
	}

	// A restart keeps a good certificate.
	if _, err := s.componentConfig(dir, "scheduler.kubeconfig", schedulerUser); err != nil {
		t.Fatal(err)
	}
	if again := kubeconfigCert(t, path, schedulerUser); !bytes.Equal(again.Raw, first.Raw) {
		t.Error("a valid certificate was reissued")
	}
}

func TestComponentConfigReissues(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, s *Server, path string)
	}{
		{"near expiry", func(t *testing.T, s *Server, path string) {
			cert, key, err := s.pki.IssueClientCert(controllerManagerUser, nil, 10*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := pki.WriteKubeconfig(path, s.URL, s.pki.CAPEM, cert, key, controllerManagerUser); err != nil {
				t.Fatal(err)
			}
		}},
		{"other user", func(t *testing.T, s *Server, path string) {
			cert, key, err := s.pki.IssueClientCert(controllerManagerUser, []string{"system:masters"}, componentCertTTL)
			if err != nil {
				t.Fatal(err)
			}
			if err := pki.WriteKubeconfig(path, s.URL, s.pki.CAPEM, cert, key, controllerManagerUser); err != nil {
				t.Fatal(err)
			}
		}},
		{"other CA", func(t *testing.T, s *Server, path string) {
			other := testServer(t, t.TempDir())
			cert, key, err := other.pki.IssueClientCert(controllerManagerUser, nil, componentCertTTL)
			if err != nil {
				t.Fatal(err)
			}
			if err := pki.WriteKubeconfig(path, s.URL, s.pki.CAPEM, cert, key, controllerManagerUser); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := testServer(t, dir)
			path := filepath.Join(dir, "controller-manager.kubeconfig")
			tt.write(t, s, path)
			old := kubeconfigCert(t, path, controllerManagerUser)
			if _, err := s.componentConfig(dir, "controller-manager.kubeconfig", controllerManagerUser); err != nil {
				t.Fatal(err)
			}
			cert := kubeconfigCert(t, path, controllerManagerUser)
			if bytes.Equal(cert.Raw, old.Raw) {
				t.Fatal("certificate not reissued")
			}
			if cert.Subject.CommonName != controllerManagerUser || len(cert.Subject.Organization) != 0 ||
				time.Until(cert.NotAfter) < componentCertTTL-time.Hour {
				t.Errorf("reissued certificate: subject %+v, expires %v", cert.Subject, cert.NotAfter)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: s.pki.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("reissued certificate does not verify: %v", err)
			}
		})
	}
}

// TestKubeletClientRefusesNonKubelets: the API server's kubelet client
// trusts the cluster CA, but only kubelet serving certificates, so a node
// cannot aim it at the API server's own port.
func TestKubeletClientRefusesNonKubelets(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	clientTLS, err := kubeletClientTLS(b)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(cert tls.Certificate) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	kubeletPEM, kubeletKey, err := b.IssueServingCert("system:node:n1", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kubeletCert, err := tls.X509KeyPair(kubeletPEM, kubeletKey)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: kubeletTransport(clientTLS)}
	if resp, err := client.Get(serve(kubeletCert) + "/healthz"); err != nil {
		t.Fatalf("kubelet refused: %v", err)
	} else {
		resp.Body.Close()
	}
	if resp, err := client.Get(serve(b.Serving) + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("the API server's own certificate was accepted as a kubelet's")
	}
}
