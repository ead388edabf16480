package cluster

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/kubelet"
)

// signingReactor plays the approver and signer: it issues every created
// request with the bundle's CA before the fake stores it.
func signingReactor(t *testing.T, b *pki.Bundle, requests *int32) k8stesting.ReactionFunc {
	return func(action k8stesting.Action) (bool, runtime.Object, error) {
		n := atomic.AddInt32(requests, 1)
		csr := action.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		csr.Name = fmt.Sprintf("%s%d", csr.GenerateName, n)
		block, _ := pem.Decode(csr.Spec.Request)
		req, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			t.Error(err)
			return false, nil, nil
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject,
			DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, b.CA, req.PublicKey, b.CAKey)
		if err != nil {
			t.Error(err)
		}
		csr.Status.Certificate = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		return false, nil, nil // let the fake store it
	}
}

// issued waits until the kubelet serves a certificate from the CA and
// returns it in PEM.
func issued(t *testing.T, got *kubelet.ServerTLS, caPEM []byte, ip net.IP) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cert := got.Current()
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
		keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		if servingCertUsable(certPEM, keyPEM, caPEM, "n1", ip, time.Hour) {
			return certPEM
		}
		if time.Now().After(deadline) {
			t.Fatal("the issued certificate was never served")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKubeletServingTLS(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP("10.0.0.7")
	cfg := KubeletServingConfig{DataDir: t.TempDir(), NodeName: "n1", NodeIP: ip, RenewBefore: time.Hour, Wait: time.Second}
	var requests int32
	client := fake.NewClientset()
	client.PrependReactor("create", "certificatesigningrequests", signingReactor(t, b, &requests))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	got, err := kubeletServingTLS(ctx, client, b.CAPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Until the node registers, the kubelet serves a self-signed
	// certificate and asks for nothing.
	time.Sleep(100 * time.Millisecond)
	if atomic.LoadInt32(&requests) != 0 {
		t.Fatal("asked for a serving certificate before the node registered")
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := issued(t, got, b.CAPEM, ip)

	again, err := kubeletServingTLS(ctx, client, b.CAPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if atomic.LoadInt32(&requests) != 1 || string(again.CertPEM) != string(first) {
		t.Errorf("kept certificate not reused: %d requests", requests)
	}
	// A certificate about to expire is replaced.
	cfg.RenewBefore = 48 * time.Hour
	renewed, err := kubeletServingTLS(ctx, client, b.CAPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RenewBefore = time.Hour
	issued(t, renewed, b.CAPEM, ip)
	if atomic.LoadInt32(&requests) != 2 {
		t.Errorf("expiring certificate not renewed: %d requests", requests)
	}
}

func TestKubeletServingTLSFallsBack(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}) // nobody approves
	client.PrependReactor("create", "certificatesigningrequests", func(action k8stesting.Action) (bool, runtime.Object, error) {
		csr := action.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		csr.Name = "pending"
		return false, nil, nil
	})
	cfg := KubeletServingConfig{DataDir: t.TempDir(), NodeName: "n1", NodeIP: net.ParseIP("10.0.0.7"), Wait: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got, err := kubeletServingTLS(ctx, client, b.CAPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if len(got.CertPEM) == 0 || servingCertUsable(got.CertPEM, got.KeyPEM, b.CAPEM, "n1", cfg.NodeIP, 0) {
		t.Error("want a self-signed fallback certificate")
	}
	if got.Current() == nil {
		t.Error("no certificate served")
	}
}
