package apiserver

import (
	"context"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// setRequestor records who asked for a certificate, as upstream's API
// server does: the requestor fields of a CSR are never the client's to set.
func setRequestor(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) {
	csr.Spec.Username, csr.Spec.UID, csr.Spec.Groups, csr.Spec.Extra = "", "", nil, nil
	if u, ok := authn.UserFrom(ctx); ok {
		csr.Spec.Username, csr.Spec.UID = u.Name, u.UID
		csr.Spec.Groups = append([]string{}, u.Groups...)
		if len(u.Extra) > 0 {
			csr.Spec.Extra = make(map[string]certificatesv1.ExtraValue, len(u.Extra))
			for k, v := range u.Extra {
				csr.Spec.Extra[k] = append(certificatesv1.ExtraValue{}, v...)
			}
		}
	}
	csr.Status = certificatesv1.CertificateSigningRequestStatus{}
}

// applyApproval takes only the Approved and Denied conditions from an
// update of the approval subresource: spec, metadata, the certificate and
// the other conditions (Failed) stay as stored.
func applyApproval(next, cur *certificatesv1.CertificateSigningRequest) {
	now := metav1.Now()
	var conds []certificatesv1.CertificateSigningRequestCondition
	for _, c := range cur.Status.Conditions {
		if !isApprovalCondition(c.Type) {
			conds = append(conds, c)
		}
	}
	for _, c := range next.Status.Conditions {
		if !isApprovalCondition(c.Type) {
			continue
		}
		if c.LastUpdateTime.IsZero() {
			c.LastUpdateTime = now
		}
		if c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		conds = append(conds, c)
	}
	*next = *cur.DeepCopy()
	next.Status.Conditions = conds
}

func isApprovalCondition(t certificatesv1.RequestConditionType) bool {
	return t == certificatesv1.CertificateApproved || t == certificatesv1.CertificateDenied
}
