package apiserver

import (
	"context"
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

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

// applyApproval keeps spec and status as stored but takes the client's
// conditions (and, through the generic update rules, its metadata), as
// upstream's approval strategy does.
func applyApproval(next, cur *certificatesv1.CertificateSigningRequest) {
	stampConditions(next, cur)
	conds := next.Status.Conditions
	next.Spec = *cur.Spec.DeepCopy()
	next.Status = *cur.Status.DeepCopy()
	next.Status.Conditions = conds
}

// applyCSRStatus keeps the spec and the stored Approved and Denied
// conditions on an update of the status subresource: only the approval
// subresource may change those. An update that adds or drops one of them
// is refused by validateCSRConditionUpdate.
func applyCSRStatus(next, cur *certificatesv1.CertificateSigningRequest) {
	next.Spec = *cur.Spec.DeepCopy()
	for _, t := range approvalConditions {
		keepConditions(next, cur, t)
	}
	stampConditions(next, cur)
}

var approvalConditions = []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied}

// keepConditions puts the stored conditions of type t in the places of the
// new ones, when their number did not change.
func keepConditions(next, cur *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) {
	old := conditionsOf(cur, t)
	idx := conditionIndices(next, t)
	if len(old) != len(idx) {
		return
	}
	for i, j := range idx {
		next.Status.Conditions[j] = old[i]
	}
}

// stampConditions fills missing condition times: lastUpdateTime is now,
// lastTransitionTime is that of a stored condition of the same type and
// status, or now.
func stampConditions(next, cur *certificatesv1.CertificateSigningRequest) {
	now := metav1.Now()
	for i := range next.Status.Conditions {
		c := &next.Status.Conditions[i]
		if c.LastUpdateTime.IsZero() {
			c.LastUpdateTime = now
		}
		if !c.LastTransitionTime.IsZero() {
			continue
		}
		c.LastTransitionTime = now
		for _, o := range cur.Status.Conditions {
			if o.Type == c.Type && o.Status == c.Status && !o.LastTransitionTime.IsZero() {
				c.LastTransitionTime = o.LastTransitionTime
				break
			}
		}
	}
}

// validateCSRConditionUpdate refuses an update that removes an Approved,
// Denied or Failed condition, or, outside the approval subresource, adds
// an Approved or Denied one.
func validateCSRConditionUpdate(subresource string, next, cur *certificatesv1.CertificateSigningRequest) field.ErrorList {
	p := field.NewPath("status", "conditions")
	var errs field.ErrorList
	for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed} {
		if len(conditionIndices(next, t)) < len(conditionIndices(cur, t)) {
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("updates may not remove a condition of type %q", t)))
		}
	}
	if subresource == "approval" {
		return errs
	}
	for _, t := range approvalConditions {
		if len(conditionIndices(next, t)) > len(conditionIndices(cur, t)) {
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("updates may not add a condition of type %q", t)))
		}
	}
	return errs
}

func conditionIndices(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) []int {
	var idx []int
	for i, c := range csr.Status.Conditions {
		if c.Type == t {
			idx = append(idx, i)
		}
	}
	return idx
}

func conditionsOf(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) []certificatesv1.CertificateSigningRequestCondition {
	var out []certificatesv1.CertificateSigningRequestCondition
	for _, i := range conditionIndices(csr, t) {
		out = append(out, csr.Status.Conditions[i])
	}
	return out
}
