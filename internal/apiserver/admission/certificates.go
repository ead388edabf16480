package admission

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

var csrResource = schema.GroupResource{Group: certificatesv1.GroupName, Resource: "certificatesigningrequests"}

// csrFor returns the new and old CSRs of a write to certificatesigningrequests
// (nil, nil when the write is about something else).
func csrFor(a *Attributes) (csr, old *certificatesv1.CertificateSigningRequest, err error) {
	if a.Resource.GroupResource() != csrResource || a.Object == nil {
		return nil, nil, nil
	}
	csr, ok := a.Object.(*certificatesv1.CertificateSigningRequest)
	if !ok {
		return nil, nil, apierrors.NewInternalError(fmt.Errorf("admission: certificatesigningrequests write carries a %T", a.Object))
	}
	if a.OldObject != nil {
		if old, ok = a.OldObject.(*certificatesv1.CertificateSigningRequest); !ok {
			return nil, nil, apierrors.NewInternalError(fmt.Errorf("admission: old certificatesigningrequest is a %T", a.OldObject))
		}
	}
	return csr, old, nil
}

// authorizedForSigner asks whether user may verb the signer, by its exact
// name or by "<domain>/*", as upstream does.
func authorizedForSigner(ctx context.Context, az authz.Authorizer, user *authn.User, verb, signerName string) bool {
	attrs := authz.Attributes{
		User: user, Verb: verb, ResourceRequest: true,
		APIGroup: certificatesv1.GroupName, APIVersion: "*", Resource: "signers", Name: signerName,
	}
	if d, _, err := az.Authorize(ctx, attrs); err == nil && d == authz.Allow {
		return true
	}
	domain, _, ok := strings.Cut(signerName, "/")
	if !ok {
		return false
	}
	attrs.Name = domain + "/*"
	d, _, err := az.Authorize(ctx, attrs)
	return err == nil && d == authz.Allow
}

// CertificateApproval is upstream's CertificateApproval plugin: updating
// the approval subresource of a CSR needs the approve verb on its signer.
type CertificateApproval struct{ authz authz.Authorizer }

// NewCertificateApproval returns the plugin asking az.
func NewCertificateApproval(az authz.Authorizer) *CertificateApproval {
	return &CertificateApproval{authz: az}
}

// Name implements Validator.
func (*CertificateApproval) Name() string { return "CertificateApproval" }

// Validate implements Validator.
func (p *CertificateApproval) Validate(ctx context.Context, a *Attributes) error {
	if a.Operation != Update || a.Subresource != "approval" {
		return nil
	}
	csr, _, err := csrFor(a)
	if csr == nil || err != nil {
		return err
	}
	if !authorizedForSigner(ctx, p.authz, a.User, "approve", csr.Spec.SignerName) {
		return apierrors.NewForbidden(csrResource, a.Name,
			fmt.Errorf("user not permitted to approve requests with signerName %q", csr.Spec.SignerName))
	}
	return nil
}

// CertificateSigning is upstream's CertificateSigning plugin: setting or
// changing status.certificate needs the sign verb on the CSR's signer.
type CertificateSigning struct{ authz authz.Authorizer }

// NewCertificateSigning returns the plugin asking az.
func NewCertificateSigning(az authz.Authorizer) *CertificateSigning {
	return &CertificateSigning{authz: az}
}

// Name implements Validator.
func (*CertificateSigning) Name() string { return "CertificateSigning" }

// Validate implements Validator.
func (p *CertificateSigning) Validate(ctx context.Context, a *Attributes) error {
	if a.Operation != Update || a.Subresource != "status" {
		return nil
	}
	csr, old, err := csrFor(a)
	if csr == nil || err != nil {
		return err
	}
	if old != nil && slices.Equal(old.Status.Certificate, csr.Status.Certificate) {
		return nil
	}
	if !authorizedForSigner(ctx, p.authz, a.User, "sign", csr.Spec.SignerName) {
		return apierrors.NewForbidden(csrResource, a.Name,
			fmt.Errorf("user not permitted to sign requests with signerName %q", csr.Spec.SignerName))
	}
	return nil
}

// CertificateSubjectRestriction is upstream's plugin of that name: no one
// may ask the kube-apiserver-client signer for a system:masters identity.
type CertificateSubjectRestriction struct{}

// NewCertificateSubjectRestriction returns the plugin.
func NewCertificateSubjectRestriction() *CertificateSubjectRestriction {
	return &CertificateSubjectRestriction{}
}

// Name implements Validator.
func (*CertificateSubjectRestriction) Name() string { return "CertificateSubjectRestriction" }

// Validate implements Validator.
func (*CertificateSubjectRestriction) Validate(_ context.Context, a *Attributes) error {
	if a.Operation != Create {
		return nil
	}
	csr, _, err := csrFor(a)
	if csr == nil || err != nil {
		return err
	}
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientSignerName {
		return nil
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return apierrors.NewBadRequest("spec.request is not a PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("spec.request: %v", err))
	}
	if slices.Contains(req.Subject.Organization, authz.PrivilegedGroup) {
		return apierrors.NewForbidden(csrResource, a.Name,
			fmt.Errorf("use of %s signer with %s group is not allowed", certificatesv1.KubeAPIServerClientSignerName, authz.PrivilegedGroup))
	}
	return nil
}

// minExpirationSeconds is upstream's shortest allowed certificate lifetime.
const minExpirationSeconds = 600

// CertificateRequestRules enforces upstream's CSR update rules that the
// generic update path does not know: the spec (with the requestor fields
// the server recorded) never changes, Approved and Denied change only
// through the approval subresource and never both, and a certificate is
// set once, on an approved request.
type CertificateRequestRules struct{}

// NewCertificateRequestRules returns the plugin.
func NewCertificateRequestRules() *CertificateRequestRules { return &CertificateRequestRules{} }

// Name implements Validator.
func (*CertificateRequestRules) Name() string { return "CertificateRequestRules" }

// Validate implements Validator.
func (*CertificateRequestRules) Validate(_ context.Context, a *Attributes) error {
	csr, old, err := csrFor(a)
	if csr == nil || err != nil {
		return err
	}
	var errs field.ErrorList
	switch a.Operation {
	case Create:
		if s := csr.Spec.ExpirationSeconds; s != nil && *s < minExpirationSeconds {
			errs = append(errs, field.Invalid(field.NewPath("spec", "expirationSeconds"), *s,
				"may not specify a duration less than 600 seconds (10 minutes)"))
		}
	case Update:
		if old != nil {
			errs = updateErrors(csr, old, a.Subresource)
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Group: certificatesv1.GroupName, Kind: "CertificateSigningRequest"}, a.Name, errs)
	}
	return nil
}

func updateErrors(csr, old *certificatesv1.CertificateSigningRequest, subresource string) field.ErrorList {
	var errs field.ErrorList
	if !equality.Semantic.DeepEqual(csr.Spec, old.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "field is immutable"))
	}
	conds := field.NewPath("status", "conditions")
	newApproval, oldApproval := approvalConditions(csr), approvalConditions(old)
	if subresource == "approval" {
		if hasTrue(csr, certificatesv1.CertificateApproved) && hasTrue(csr, certificatesv1.CertificateDenied) {
			errs = append(errs, field.Invalid(conds, certificatesv1.CertificateDenied, "Approved and Denied conditions are mutually exclusive"))
		}
		for t := range oldApproval {
			if _, ok := newApproval[t]; !ok {
				errs = append(errs, field.Forbidden(conds, fmt.Sprintf("updates may not remove a condition of type %q", t)))
			}
		}
	} else {
		for _, t := range []certificatesv1.RequestConditionType{certificatesv1.CertificateApproved, certificatesv1.CertificateDenied} {
			if newApproval[t] != oldApproval[t] {
				errs = append(errs, field.Forbidden(conds, fmt.Sprintf("a condition of type %q may be changed only through the approval subresource", t)))
			}
		}
	}
	certPath := field.NewPath("status", "certificate")
	switch {
	case len(old.Status.Certificate) > 0 && !slices.Equal(old.Status.Certificate, csr.Status.Certificate):
		errs = append(errs, field.Forbidden(certPath, "updates may not modify existing certificate content"))
	case len(old.Status.Certificate) == 0 && len(csr.Status.Certificate) > 0 &&
		(!hasTrue(csr, certificatesv1.CertificateApproved) || hasTrue(csr, certificatesv1.CertificateDenied)):
		errs = append(errs, field.Forbidden(certPath, "the certificate may be set only on an approved request"))
	}
	return errs
}

// approvalConditions returns the status of the Approved and Denied
// conditions, by type.
func approvalConditions(csr *certificatesv1.CertificateSigningRequest) map[certificatesv1.RequestConditionType]string {
	out := map[certificatesv1.RequestConditionType]string{}
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied {
			out[c.Type] = string(c.Status)
		}
	}
	return out
}

func hasTrue(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
