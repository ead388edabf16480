package admission

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

var csrGVR = certificatesv1.SchemeGroupVersion.WithResource("certificatesigningrequests")

// signerPolicy allows users verbs on signers by name, as a fake RBAC:
// grants["alice"] = {"approve kubernetes.io/kube-apiserver-client", ...}.
func signerPolicy(grants map[string][]string) authz.Authorizer {
	return authz.Func(func(_ context.Context, a authz.Attributes) (authz.Decision, string, error) {
		if a.APIGroup != "certificates.k8s.io" || a.Resource != "signers" || !a.ResourceRequest {
			return authz.NoOpinion, "", nil
		}
		for _, g := range grants[a.User.Name] {
			if g == a.Verb+" "+a.Name {
				return authz.Allow, "", nil
			}
		}
		return authz.NoOpinion, "", nil
	})
}

func csrPEM(t *testing.T, subject pkix.Name) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func newCSR(signer string, conds ...certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequest {
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr1"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			SignerName: signer, Username: "system:bootstrap:abcdef", Groups: []string{"system:bootstrappers"},
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
		},
	}
	for _, c := range conds {
		csr.Status.Conditions = append(csr.Status.Conditions,
			certificatesv1.CertificateSigningRequestCondition{Type: c, Status: corev1.ConditionTrue})
	}
	return csr
}

func TestCertificateApproval(t *testing.T) {
	p := NewCertificateApproval(signerPolicy(map[string][]string{
		"alice": {"approve kubernetes.io/kube-apiserver-client"},
		"bob":   {"approve example.com/*"},
		"carol": {"sign kubernetes.io/kube-apiserver-client"},
	}))
	for _, tc := range []struct {
		name, user, signer, subresource string
		allowed                         bool
	}{
		{"exact signer", "alice", "kubernetes.io/kube-apiserver-client", "approval", true},
		{"other signer", "alice", "kubernetes.io/kube-apiserver-client-kubelet", "approval", false},
		{"domain wildcard", "bob", "example.com/foo", "approval", true},
		{"wildcard of another domain", "bob", "kubernetes.io/kube-apiserver-client", "approval", false},
		{"sign is not approve", "carol", "kubernetes.io/kube-apiserver-client", "approval", false},
		{"bootstrap token approving itself", "system:bootstrap:abcdef", "kubernetes.io/kube-apiserver-client", "approval", false},
		{"not the approval subresource", "mallory", "kubernetes.io/kube-apiserver-client", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Attributes{Operation: Update, Resource: csrGVR, Subresource: tc.subresource, Name: "csr1",
				Object:    newCSR(tc.signer, certificatesv1.CertificateApproved),
				OldObject: newCSR(tc.signer), User: &authn.User{Name: tc.user}}
			err := p.Validate(context.Background(), a)
			if tc.allowed != (err == nil) {
				t.Fatalf("err = %v, want allowed=%v", err, tc.allowed)
			}
			if err != nil {
				want := `user not permitted to approve requests with signerName "` + tc.signer + `"`
				if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want 403 with %q", err, want)
				}
			}
		})
	}
}

func TestCertificateSigning(t *testing.T) {
	p := NewCertificateSigning(signerPolicy(map[string][]string{"signer": {"sign kubernetes.io/kube-apiserver-client"}}))
	signed := func(user string, cert, oldCert string) error {
		csr, old := newCSR("kubernetes.io/kube-apiserver-client", certificatesv1.CertificateApproved), newCSR("kubernetes.io/kube-apiserver-client", certificatesv1.CertificateApproved)
		csr.Status.Certificate, old.Status.Certificate = []byte(cert), []byte(oldCert)
		return p.Validate(context.Background(), &Attributes{Operation: Update, Resource: csrGVR, Subresource: "status",
			Name: "csr1", Object: csr, OldObject: old, User: &authn.User{Name: user}})
	}
	if err := signed("signer", "CERT", ""); err != nil {
		t.Errorf("signer setting the certificate: %v", err)
	}
	err := signed("approver", "CERT", "")
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `user not permitted to sign requests with signerName "kubernetes.io/kube-apiserver-client"`) {
		t.Errorf("non-signer setting the certificate: err = %v, want 403", err)
	}
	if err := signed("approver", "CERT", "CERT"); err != nil {
		t.Errorf("status update keeping the certificate: %v", err)
	}
}

func TestCertificateSubjectRestriction(t *testing.T) {
	p := NewCertificateSubjectRestriction()
	for _, tc := range []struct {
		name    string
		signer  string
		orgs    []string
		allowed bool
	}{
		{"masters on the client signer", "kubernetes.io/kube-apiserver-client", []string{"dev", "system:masters"}, false},
		{"other group", "kubernetes.io/kube-apiserver-client", []string{"dev"}, true},
		{"masters on another signer", "example.com/foo", []string{"system:masters"}, true},
	} {
		csr := newCSR(tc.signer)
		csr.Spec.Request = csrPEM(t, pkix.Name{CommonName: "x", Organization: tc.orgs})
		err := p.Validate(context.Background(), &Attributes{Operation: Create, Resource: csrGVR, Name: "csr1", Object: csr, User: &authn.User{Name: "u"}})
		if tc.allowed != (err == nil) {
			t.Errorf("%s: err = %v, want allowed=%v", tc.name, err, tc.allowed)
		}
		if err != nil && !apierrors.IsForbidden(err) {
			t.Errorf("%s: err = %v, want 403", tc.name, err)
		}
	}
}

func TestCertificateRequestRules(t *testing.T) {
	p := NewCertificateRequestRules()
	const signer = "kubernetes.io/kube-apiserver-client"
	short := int32(599)
	for _, tc := range []struct {
		name        string
		op          Operation
		subresource string
		mutate      func(csr *certificatesv1.CertificateSigningRequest)
		old         *certificatesv1.CertificateSigningRequest
		allowed     bool
	}{
		{name: "short expiration", op: Create, mutate: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.ExpirationSeconds = &short }},
		{name: "approve", op: Update, subresource: "approval", old: newCSR(signer), allowed: true,
			mutate: func(c *certificatesv1.CertificateSigningRequest) {
				c.Status = newCSR(signer, certificatesv1.CertificateApproved).Status
			}},
		{name: "approve and deny", op: Update, subresource: "approval", old: newCSR(signer),
			mutate: func(c *certificatesv1.CertificateSigningRequest) {
				c.Status = newCSR(signer, certificatesv1.CertificateApproved, certificatesv1.CertificateDenied).Status
			}},
		{name: "remove approval", op: Update, subresource: "approval", old: newCSR(signer, certificatesv1.CertificateApproved),
			mutate: func(c *certificatesv1.CertificateSigningRequest) { c.Status.Conditions = nil }},
		{name: "approve through status", op: Update, subresource: "status", old: newCSR(signer),
			mutate: func(c *certificatesv1.CertificateSigningRequest) {
				c.Status = newCSR(signer, certificatesv1.CertificateApproved).Status
			}},
		{name: "change the requestor", op: Update, old: newCSR(signer),
			mutate: func(c *certificatesv1.CertificateSigningRequest) { c.Spec.Groups = []string{"system:masters"} }},
		{name: "sign an approved request", op: Update, subresource: "status", old: newCSR(signer, certificatesv1.CertificateApproved), allowed: true,
			mutate: func(c *certificatesv1.CertificateSigningRequest) {
				c.Status = newCSR(signer, certificatesv1.CertificateApproved).Status
				c.Status.Certificate = []byte("CERT")
			}},
		{name: "sign a pending request", op: Update, subresource: "status", old: newCSR(signer),
			mutate: func(c *certificatesv1.CertificateSigningRequest) { c.Status.Certificate = []byte("CERT") }},
		{name: "replace the certificate", op: Update, subresource: "status",
			old: func() *certificatesv1.CertificateSigningRequest {
				c := newCSR(signer, certificatesv1.CertificateApproved)
				c.Status.Certificate = []byte("CERT")
				return c
			}(),
			mutate: func(c *certificatesv1.CertificateSigningRequest) {
				c.Status = newCSR(signer, certificatesv1.CertificateApproved).Status
				c.Status.Certificate = []byte("OTHER")
			}},
		{name: "label only", op: Update, old: newCSR(signer), allowed: true,
			mutate: func(c *certificatesv1.CertificateSigningRequest) { c.Labels = map[string]string{"a": "b"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr := newCSR(signer)
			if tc.old != nil {
				csr = tc.old.DeepCopy()
			}
			tc.mutate(csr)
			a := &Attributes{Operation: tc.op, Resource: csrGVR, Subresource: tc.subresource, Name: "csr1", Object: csr, User: &authn.User{Name: "u"}}
			if tc.old != nil {
				a.OldObject = tc.old
			}
			err := p.Validate(context.Background(), a)
			if tc.allowed != (err == nil) {
				t.Fatalf("err = %v, want allowed=%v", err, tc.allowed)
			}
			if err != nil && !apierrors.IsInvalid(err) {
				t.Errorf("err = %v, want 422 Invalid", err)
			}
		})
	}
}

func TestCertificatePluginsIgnoreOtherResources(t *testing.T) {
	deny := authz.Func(func(context.Context, authz.Attributes) (authz.Decision, string, error) { return authz.Deny, "", nil })
	a := &Attributes{Operation: Update, Subresource: "approval", Resource: corev1.SchemeGroupVersion.WithResource("pods"),
		Object: &corev1.Pod{}, OldObject: &corev1.Pod{}, User: &authn.User{Name: "u"}}
	for _, v := range []Validator{NewCertificateApproval(deny), NewCertificateSigning(deny), NewCertificateSubjectRestriction(), NewCertificateRequestRules()} {
		if err := v.Validate(context.Background(), a); err != nil {
			t.Errorf("%s: %v", v.Name(), err)
		}
	}
}
