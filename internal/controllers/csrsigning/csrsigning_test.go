package csrsigning

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func testCA(t *testing.T) CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return CA{Cert: cert, Key: key}
}

func request(t *testing.T, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

var (
	nodeSubject = pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes"}}
	clientUse   = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	servingUse  = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	approved    = certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}
	denied      = certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue}
)

func TestReconcile(t *testing.T) {
	ca := testCA(t)
	year := int32(2147483647)
	short := int32(60)
	for _, tc := range []struct {
		name       string
		signer     string
		req        *x509.CertificateRequest
		usages     []certificatesv1.KeyUsage
		conds      []certificatesv1.CertificateSigningRequestCondition
		expiration *int32
		// want: "" untouched, "signed", or "failed".
		want    string
		maxLife time.Duration
		limit   time.Duration // --cluster-signing-duration; 0 is the default
	}{
		{name: "pending node client", signer: SignerName, req: &x509.CertificateRequest{Subject: nodeSubject}, usages: clientUse},
		{name: "approved node client", signer: SignerName, req: &x509.CertificateRequest{Subject: nodeSubject}, usages: clientUse,
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, want: "signed", maxLife: DefaultMaxDuration},
		{name: "denied after approval", signer: SignerName, req: &x509.CertificateRequest{Subject: nodeSubject}, usages: clientUse,
			conds: []certificatesv1.CertificateSigningRequestCondition{approved, denied}},
		{name: "masters on the kubelet signer", signer: SignerName, usages: clientUse,
			req:   &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}},
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, want: "failed"},
		{name: "node client with SANs", signer: SignerName, usages: clientUse,
			req:   &x509.CertificateRequest{Subject: nodeSubject, DNSNames: []string{"evil.example"}},
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, want: "failed"},
		{name: "huge expiration is capped", signer: SignerName, req: &x509.CertificateRequest{Subject: nodeSubject}, usages: clientUse,
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, expiration: &year, want: "signed", maxLife: time.Hour, limit: time.Hour},
		{name: "tiny expiration is raised", signer: SignerName, req: &x509.CertificateRequest{Subject: nodeSubject}, usages: clientUse,
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, expiration: &short, want: "signed", maxLife: MinDuration},
		{name: "legacy-unknown never signed", signer: "kubernetes.io/legacy-unknown", req: &x509.CertificateRequest{Subject: nodeSubject},
			usages: clientUse, conds: []certificatesv1.CertificateSigningRequestCondition{approved}},
		{name: "other signer never signed", signer: "example.com/foo", req: &x509.CertificateRequest{Subject: nodeSubject},
			usages: clientUse, conds: []certificatesv1.CertificateSigningRequestCondition{approved}},
		{name: "api server client", signer: certificatesv1.KubeAPIServerClientSignerName, usages: clientUse,
			req:   &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice", Organization: []string{"dev"}}},
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, want: "signed", maxLife: DefaultMaxDuration},
		{name: "api server client asking server auth", signer: certificatesv1.KubeAPIServerClientSignerName, usages: servingUse,
			req:   &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice"}},
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, want: "failed"},
		{name: "kubelet serving", signer: certificatesv1.KubeletServingSignerName, usages: servingUse,
			req:   &x509.CertificateRequest{Subject: nodeSubject, DNSNames: []string{"n1"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.5")}},
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, want: "signed", maxLife: DefaultMaxDuration},
		{name: "kubelet serving without SANs", signer: certificatesv1.KubeletServingSignerName, usages: servingUse,
			req:   &x509.CertificateRequest{Subject: nodeSubject},
			conds: []certificatesv1.CertificateSigningRequestCondition{approved}, want: "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr := &certificatesv1.CertificateSigningRequest{
				ObjectMeta: metav1.ObjectMeta{Name: "csr"},
				Spec: certificatesv1.CertificateSigningRequestSpec{
					Request: request(t, tc.req), SignerName: tc.signer, Usages: tc.usages, ExpirationSeconds: tc.expiration,
				},
				Status: certificatesv1.CertificateSigningRequestStatus{Conditions: tc.conds},
			}
			client := fake.NewClientset(csr)
			cfg := Config{CA: ca, MaxDuration: tc.limit}
			if err := reconcile(context.Background(), client, csr.DeepCopy(), cfg); err != nil {
				t.Fatal(err)
			}
			got, err := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "csr", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			switch tc.want {
			case "":
				if len(got.Status.Certificate) > 0 || HasCondition(got, certificatesv1.CertificateFailed) {
					t.Fatalf("request was touched: %+v", got.Status)
				}
			case "failed":
				if len(got.Status.Certificate) > 0 || !HasCondition(got, certificatesv1.CertificateFailed) {
					t.Fatalf("want a Failed condition and no certificate: %+v", got.Status)
				}
			case "signed":
				checkCert(t, ca, got, tc.req, tc.maxLife)
			}
		})
	}
}

func checkCert(t *testing.T, ca CA, csr *certificatesv1.CertificateSigningRequest, req *x509.CertificateRequest, life time.Duration) {
	t.Helper()
	block, _ := pem.Decode(csr.Status.Certificate)
	if block == nil {
		t.Fatalf("no certificate: %+v", csr.Status)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("not signed by the CA: %v", err)
	}
	if cert.Subject.CommonName != req.Subject.CommonName || !slices.Equal(cert.Subject.Organization, req.Subject.Organization) {
		t.Errorf("subject = %v, want %v", cert.Subject, req.Subject)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore) - backdate; got < life-time.Minute || got > life+time.Minute {
		t.Errorf("lifetime = %v, want %v", got, life)
	}
	if len(cert.DNSNames) != len(req.DNSNames) || len(cert.IPAddresses) != len(req.IPAddresses) {
		t.Errorf("SANs = %v %v, want %v %v", cert.DNSNames, cert.IPAddresses, req.DNSNames, req.IPAddresses)
	}
	wantEKU := x509.ExtKeyUsageClientAuth
	if csr.Spec.SignerName == certificatesv1.KubeletServingSignerName {
		wantEKU = x509.ExtKeyUsageServerAuth
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{wantEKU}) {
		t.Errorf("ext key usage = %v, want %v", cert.ExtKeyUsage, wantEKU)
	}
}

func TestValidateKubeletClient(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    *x509.CertificateRequest
		usages []certificatesv1.KeyUsage
		ok     bool
	}{
		{"node", &x509.CertificateRequest{Subject: nodeSubject}, clientUse, true},
		{"with key encipherment", &x509.CertificateRequest{Subject: nodeSubject},
			[]certificatesv1.KeyUsage{certificatesv1.UsageKeyEncipherment, certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, true},
		{"no client auth", &x509.CertificateRequest{Subject: nodeSubject}, []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature}, false},
		{"server auth", &x509.CertificateRequest{Subject: nodeSubject}, servingUse, false},
		{"extra group", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:n1", Organization: []string{"system:nodes", "system:masters"}}}, clientUse, false},
		{"not a node", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "alice", Organization: []string{"system:nodes"}}}, clientUse, false},
		{"empty node name", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:", Organization: []string{"system:nodes"}}}, clientUse, false},
		{"IP SAN", &x509.CertificateRequest{Subject: nodeSubject, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, clientUse, false},
		{"email SAN", &x509.CertificateRequest{Subject: nodeSubject, EmailAddresses: []string{"a@b.c"}}, clientUse, false},
	} {
		req, err := ParseRequest(request(t, tc.req))
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateKubeletClient(req, tc.usages); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestDuration(t *testing.T) {
	secs := func(s int32) *int32 { return &s }
	for _, tc := range []struct {
		exp   *int32
		limit time.Duration
		want  time.Duration
	}{
		{nil, 0, DefaultMaxDuration},
		{nil, time.Hour, time.Hour},
		{secs(7200), time.Hour, time.Hour},
		{secs(1800), time.Hour, 30 * time.Minute},
		{secs(1), time.Hour, MinDuration},
		{secs(2147483647), 0, DefaultMaxDuration},
	} {
		csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{ExpirationSeconds: tc.exp}}
		if got := Duration(csr, tc.limit); got != tc.want {
			t.Errorf("Duration(%v, %v) = %v, want %v", tc.exp, tc.limit, got, tc.want)
		}
	}
}
