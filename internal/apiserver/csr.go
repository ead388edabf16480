package apiserver

import (
	"context"

	certificatesv1 "k8s.io/api/certificates/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// setRequestor records who asked for a certificate, as upstream's API
// server does: the requestor fields of a CSR are never the client's to set.
func setRequestor(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) {
	csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups = "", "", nil
	if u, ok := authn.UserFrom(ctx); ok {
		csr.Spec.Username, csr.Spec.UID = u.Name, u.UID
		csr.Spec.Groups = append([]string{}, u.Groups...)
	}
	csr.Status = certificatesv1.CertificateSigningRequestStatus{}
}

// applyApproval takes only the conditions (Approved, Denied) from an
// update of the approval subresource.
func applyApproval(next, cur *certificatesv1.CertificateSigningRequest) {
	conds := next.Status.Conditions
	*next = *cur.DeepCopy()
	next.Status.Conditions = conds
}
