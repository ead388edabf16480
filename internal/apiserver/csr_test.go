package apiserver

import (
	"context"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

func TestSetRequestorIgnoresTheClient(t *testing.T) {
	csr := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
		Username: "system:node:n1", UID: "forged", Groups: []string{"system:masters"},
		Extra: map[string]certificatesv1.ExtraValue{"forged": {"x"}},
	}}
	csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
	u := &authn.User{Name: "system:bootstrap:abcdef", UID: "u1", Groups: []string{"system:bootstrappers"},
		Extra: map[string][]string{"scopes": {"a", "b"}}}
	setRequestor(authn.WithUser(context.Background(), u), csr)
	s := csr.Spec
	if s.Username != u.Name || s.UID != "u1" || len(s.Groups) != 1 || s.Groups[0] != "system:bootstrappers" ||
		len(s.Extra) != 1 || len(s.Extra["scopes"]) != 2 {
		t.Errorf("requestor = %+v, want the authenticated user", s)
	}
	if len(csr.Status.Conditions) != 0 {
		t.Errorf("status kept on create: %+v", csr.Status)
	}
}

func TestApplyApprovalTakesOnlyApprovalConditions(t *testing.T) {
	failed := certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue}
	cur := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{Username: "bob"}}
	cur.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{failed}
	next := cur.DeepCopy()
	next.Spec.Username = "mallory"
	next.Status.Certificate = []byte("CERT")
	next.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}}
	applyApproval(next, cur)
	if next.Spec.Username != "bob" || len(next.Status.Certificate) != 0 {
		t.Errorf("approval changed spec or certificate: %+v", next)
	}
	if len(next.Status.Conditions) != 2 || next.Status.Conditions[0].Type != certificatesv1.CertificateFailed ||
		next.Status.Conditions[1].Type != certificatesv1.CertificateApproved || next.Status.Conditions[1].LastUpdateTime.IsZero() {
		t.Errorf("conditions = %+v, want Failed kept and Approved added with a time", next.Status.Conditions)
	}
}
