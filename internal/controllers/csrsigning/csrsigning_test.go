package csrsigning

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
)

func request(t *testing.T, subject pkix.Name, dnsNames ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject, DNSNames: dnsNames}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestApprovable(t *testing.T) {
	node := pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}
	clientUsages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	for _, tc := range []struct {
		name     string
		req      []byte
		user     string
		groups   []string
		usages   []certificatesv1.KeyUsage
		approved bool
	}{
		{"bootstrapping node", request(t, node), "system:bootstrap:abcdef", []string{"system:bootstrappers"}, clientUsages, true},
		{"node renewing itself", request(t, node), "system:node:n1", []string{"system:nodes"}, clientUsages, true},
		{"node asking for another node", request(t, node), "system:node:n2", []string{"system:nodes"}, clientUsages, false},
		{"admin identity", request(t, pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}), "system:bootstrap:abcdef", []string{"system:bootstrappers"}, clientUsages, false},
		{"extra names", request(t, node, "evil.example"), "system:bootstrap:abcdef", []string{"system:bootstrappers"}, clientUsages, false},
		{"server usage", request(t, node), "system:bootstrap:abcdef", []string{"system:bootstrappers"},
			[]certificatesv1.KeyUsage{certificatesv1.UsageServerAuth}, false},
		{"anyone else", request(t, node), "mallory", []string{"system:authenticated"}, clientUsages, false},
	} {
		csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: tc.req, SignerName: SignerName, Username: tc.user, Groups: tc.groups, Usages: tc.usages,
		}}
		if got, _ := approvable(csr); got != tc.approved {
			t.Errorf("%s: approvable = %v, want %v", tc.name, got, tc.approved)
		}
	}
}
