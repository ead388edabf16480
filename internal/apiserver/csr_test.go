package apiserver

import (
	"context"
	"slices"
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

func TestCSRSubresourceConditions(t *testing.T) {
	cond := func(t certificatesv1.RequestConditionType, reason string) certificatesv1.CertificateSigningRequestCondition {
		return certificatesv1.CertificateSigningRequestCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason}
	}
	cur := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{Username: "bob"}}
	cur.Status.Certificate = []byte("STORED")
	cur.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, "stored")}
	for _, tc := range []struct {
		name, sub   string
		conds       []certificatesv1.CertificateSigningRequestCondition
		wantReasons []string // of the conditions kept, in order
		wantCert    string
		wantErrs    int
	}{
		{"approval takes any condition", "approval",
			[]certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, "stored"), cond("Custom", "new")},
			[]string{"stored", "new"}, "STORED", 0},
		{"approval may not drop Approved", "approval", nil, nil, "STORED", 1},
		{"status keeps the stored Approved", "status",
			[]certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, "forged"), cond("StatusUpdate", "new")},
			[]string{"stored", "new"}, "NEW", 0},
		{"status may not add Denied", "status",
			[]certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, "stored"), cond(certificatesv1.CertificateDenied, "x")},
			[]string{"stored", "x"}, "NEW", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := cur.DeepCopy()
			next.Spec.Username = "mallory"
			next.Status.Certificate = []byte("NEW")
			next.Status.Conditions = tc.conds
			if tc.sub == "approval" {
				applyApproval(next, cur)
			} else {
				applyCSRStatus(next, cur)
			}
			if next.Spec.Username != "bob" || string(next.Status.Certificate) != tc.wantCert {
				t.Errorf("spec user %q, certificate %q; want bob, %q", next.Spec.Username, next.Status.Certificate, tc.wantCert)
			}
			var reasons []string
			for _, c := range next.Status.Conditions {
				reasons = append(reasons, c.Reason)
				if c.LastUpdateTime.IsZero() || c.LastTransitionTime.IsZero() {
					t.Errorf("condition %s has no times", c.Type)
				}
			}
			if !slices.Equal(reasons, tc.wantReasons) {
				t.Errorf("condition reasons = %v, want %v", reasons, tc.wantReasons)
			}
			if errs := validateCSRConditionUpdate(tc.sub, next, cur); len(errs) != tc.wantErrs {
				t.Errorf("validation errors = %v, want %d", errs, tc.wantErrs)
			}
		})
	}
}
