package cluster

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
)

// signingReactor plays the approver and signer: it issues every created
// request with the bundle's CA before the fake stores it.
func signingReactor(t *testing.T, b *pki.Bundle, requests *int) k8stesting.ReactionFunc {
	return func(action k8stesting.Action) (bool, runtime.Object, error) {
		*requests++
		csr := action.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		csr.Name = csr.GenerateName + "x"
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

func TestKubeletServingTLS(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP("10.0.0.7")
	cfg := KubeletServingConfig{DataDir: t.TempDir(), NodeName: "n1", NodeIP: ip, RenewBefore: time.Hour, Wait: time.Second}
	var requests int
	client := fake.NewClientset()
	client.PrependReactor("create", "certificatesigningrequests", signingReactor(t, b, &requests))

	got, err := kubeletServingTLS(context.Background(), client, b.CAPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !servingCertUsable(got.CertPEM, got.KeyPEM, b.CAPEM, "n1", ip, time.Hour) {
		t.Fatal("issued certificate does not chain to the CA or cover the node")
	}
	again, err := kubeletServingTLS(context.Background(), client, b.CAPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if requests != 1 || string(again.CertPEM) != string(got.CertPEM) {
		t.Errorf("kept certificate not reused: %d requests", requests)
	}
	// A certificate about to expire is replaced.
	cfg.RenewBefore = 48 * time.Hour
	if _, err := kubeletServingTLS(context.Background(), client, b.CAPEM, cfg); err != nil {
		t.Fatal(err)
	}
	if requests != 2 {
		t.Errorf("expiring certificate not renewed: %d requests", requests)
	}
}

func TestKubeletServingTLSFallsBack(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset() // nobody approves: the request stays pending
	client.PrependReactor("create", "certificatesigningrequests", func(action k8stesting.Action) (bool, runtime.Object, error) {
		csr := action.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		csr.Name = "pending"
		return false, nil, nil
	})
	cfg := KubeletServingConfig{DataDir: t.TempDir(), NodeName: "n1", NodeIP: net.ParseIP("10.0.0.7"), Wait: 300 * time.Millisecond}
	got, err := kubeletServingTLS(context.Background(), client, b.CAPEM, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.CertPEM) == 0 || servingCertUsable(got.CertPEM, got.KeyPEM, b.CAPEM, "n1", cfg.NodeIP, 0) {
		t.Error("want a self-signed fallback certificate")
	}
}
