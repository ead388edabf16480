package csrsigning

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"
)

// Certificates and Failed conditions are dated by Config.Clock.
func TestReconcileUsesClock(t *testing.T) {
	ca := testCA(t)
	// A day into the CA's validity, whole seconds as x509 stores them.
	clk := testingclock.NewFakePassiveClock(time.Now().Add(24 * time.Hour).Truncate(time.Second))
	cfg := Config{CA: ca, MaxDuration: time.Hour, Clock: clk}

	run := func(req *x509.CertificateRequest) *certificatesv1.CertificateSigningRequest {
		t.Helper()
		csr := &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: "csr"},
			Spec:       certificatesv1.CertificateSigningRequestSpec{Request: request(t, req), SignerName: SignerName, Usages: clientUse},
			Status:     certificatesv1.CertificateSigningRequestStatus{Conditions: []certificatesv1.CertificateSigningRequestCondition{approved}},
		}
		client := fake.NewClientset(csr)
		if err := reconcile(context.Background(), client, csr.DeepCopy(), cfg); err != nil {
			t.Fatal(err)
		}
		got, err := client.CertificatesV1().CertificateSigningRequests().Get(context.Background(), "csr", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	got := run(&x509.CertificateRequest{Subject: nodeSubject})
	block, _ := pem.Decode(got.Status.Certificate)
	if block == nil {
		t.Fatalf("no certificate: %+v", got.Status)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(-backdate); !cert.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", cert.NotBefore, want)
	}
	if want := clk.Now().Add(time.Hour); !cert.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", cert.NotAfter, want)
	}

	got = run(&x509.CertificateRequest{Subject: nodeSubject, DNSNames: []string{"evil.example"}})
	var failed *certificatesv1.CertificateSigningRequestCondition
	for i := range got.Status.Conditions {
		if got.Status.Conditions[i].Type == certificatesv1.CertificateFailed {
			failed = &got.Status.Conditions[i]
		}
	}
	if failed == nil || !failed.LastUpdateTime.Time.Equal(clk.Now()) {
		t.Fatalf("Failed condition %+v, want LastUpdateTime %v", failed, clk.Now())
	}
}
