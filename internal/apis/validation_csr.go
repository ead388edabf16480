package apis

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// csrUsages are the key usages a request may ask for, sorted as upstream
// lists them in errors.
var csrUsages = slices.Sorted(slices.Values([]string{
	string(certificatesv1.UsageSigning), string(certificatesv1.UsageDigitalSignature), string(certificatesv1.UsageContentCommitment),
	string(certificatesv1.UsageKeyEncipherment), string(certificatesv1.UsageKeyAgreement), string(certificatesv1.UsageDataEncipherment),
	string(certificatesv1.UsageCertSign), string(certificatesv1.UsageCRLSign), string(certificatesv1.UsageEncipherOnly),
	string(certificatesv1.UsageDecipherOnly), string(certificatesv1.UsageAny), string(certificatesv1.UsageServerAuth),
	string(certificatesv1.UsageClientAuth), string(certificatesv1.UsageCodeSigning), string(certificatesv1.UsageEmailProtection),
	string(certificatesv1.UsageSMIME), string(certificatesv1.UsageIPsecEndSystem), string(certificatesv1.UsageIPsecTunnel),
	string(certificatesv1.UsageIPsecUser), string(certificatesv1.UsageTimestamping), string(certificatesv1.UsageOCSPSigning),
	string(certificatesv1.UsageMicrosoftSGC), string(certificatesv1.UsageNetscapeSGC),
}))

// legacyUnknownSigner may not be requested through certificates.k8s.io/v1.
const legacyUnknownSigner = "kubernetes.io/legacy-unknown"

// minCSRExpirationSeconds is the shortest certificate a request may ask for.
const minCSRExpirationSeconds = 600

func validateCSR(csr *certificatesv1.CertificateSigningRequest) field.ErrorList {
	sp := field.NewPath("spec")
	s := &csr.Spec
	var errs field.ErrorList
	if err := checkCSRRequest(s.Request); err != nil {
		errs = append(errs, field.Invalid(sp.Child("request"), s.Request, err.Error()))
	}
	up := sp.Child("usages")
	if len(s.Usages) == 0 {
		errs = append(errs, field.Required(up, ""))
	}
	for i, u := range s.Usages {
		if !slices.Contains(csrUsages, string(u)) {
			errs = append(errs, field.NotSupported(up.Index(i), u, csrUsages))
		}
	}
	for i, u := range s.Usages {
		if slices.Contains(s.Usages[:i], u) {
			errs = append(errs, field.Duplicate(up.Index(i), u))
		}
	}
	np := sp.Child("signerName")
	if s.SignerName == legacyUnknownSigner {
		errs = append(errs, field.Invalid(np, s.SignerName, "the legacy signerName is not allowed via this API version"))
	} else {
		errs = append(errs, validateSignerName(s.SignerName, np)...)
	}
	if e := s.ExpirationSeconds; e != nil && *e < minCSRExpirationSeconds {
		errs = append(errs, field.Invalid(sp.Child("expirationSeconds"), *e, "may not specify a duration less than 600 seconds (10 minutes)"))
	}
	return errs
}

// checkCSRRequest parses a PEM certificate request and checks that it is
// signed by the key it carries.
func checkCSRRequest(data []byte) error {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return errors.New("PEM block type must be CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return err
	}
	return req.CheckSignature()
}

// validateSignerName: "<domain>/<path>", where the domain has at least two
// DNS labels and the path's dot-separated parts are DNS subdomains.
func validateSignerName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	domain, rest, ok := strings.Cut(name, "/")
	if !ok || strings.Contains(rest, "/") {
		return field.ErrorList{field.Invalid(p, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'")}
	}
	var errs field.ErrorList
	if len(domain) > validation.DNS1123SubdomainMaxLength {
		errs = append(errs, field.TooLong(p, "", validation.DNS1123SubdomainMaxLength))
	}
	labels := strings.Split(domain, ".")
	errs = append(errs, firstBadPart(labels, domain, validation.IsDNS1123Label, p)...)
	if len(labels) < 2 {
		errs = append(errs, field.Invalid(p, domain, "should be a domain with at least two segments separated by dots"))
	}
	errs = append(errs, firstBadPart(strings.Split(rest, "."), rest, validation.IsDNS1123Subdomain, p)...)
	maxLen := validation.DNS1123SubdomainMaxLength + (validation.DNS1123SubdomainMaxLength + validation.DNS1123LabelMaxLength + 1) + 1
	if len(name) > maxLen {
		errs = append(errs, field.TooLong(p, "", maxLen))
	}
	return errs
}

// firstBadPart reports the problems of the first part check refuses.
func firstBadPart(parts []string, whole string, check func(string) []string, p *field.Path) field.ErrorList {
	for _, part := range parts {
		if msgs := check(part); len(msgs) > 0 {
			errs := make(field.ErrorList, 0, len(msgs))
			for _, m := range msgs {
				errs = append(errs, field.Invalid(p, whole, fmt.Sprintf("validating label %q: %s", part, m)))
			}
			return errs
		}
	}
	return nil
}
