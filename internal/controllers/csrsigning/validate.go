package csrsigning

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

// NodeUserPrefix starts the user name (and certificate CN) of every node.
const NodeUserPrefix = "system:node:"

// NodesGroup is the group every node's certificate names.
const NodesGroup = "system:nodes"

// ParseRequest decodes the PEM certificate request of a CSR and checks that
// the requester holds the private key.
func ParseRequest(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("spec.request is not a PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return req, nil
}

// HasCondition reports whether the CSR carries condition t with status True.
func HasCondition(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// ValidateKubeletClient checks that a request is exactly a node's client
// certificate: CN=system:node:<name>, O=[system:nodes], no subject
// alternative names, client usages only and client auth among them.
func ValidateKubeletClient(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	if err := validateNodeSubject(req); err != nil {
		return err
	}
	if len(req.DNSNames) > 0 || len(req.IPAddresses) > 0 {
		return errors.New("DNS or IP subjectAltNames are not allowed")
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return errors.New("email and URI subjectAltNames are not allowed")
	}
	return checkUsages(usages, certificatesv1.UsageClientAuth)
}

// ValidateKubeletServing checks that a request is a node's serving
// certificate: CN=system:node:<name>, O=[system:nodes], DNS or IP
// subject alternative names only, server usages with server auth.
func ValidateKubeletServing(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage) error {
	if err := validateNodeSubject(req); err != nil {
		return err
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return errors.New("email and URI subjectAltNames are not allowed")
	}
	if len(req.DNSNames)+len(req.IPAddresses) == 0 {
		return errors.New("DNS or IP subjectAltName is required")
	}
	return checkUsages(usages, certificatesv1.UsageServerAuth)
}

// ValidateAPIServerClient checks that a request asks only for a client
// certificate.
func ValidateAPIServerClient(usages []certificatesv1.KeyUsage) error {
	return checkUsages(usages, certificatesv1.UsageClientAuth)
}

func validateNodeSubject(req *x509.CertificateRequest) error {
	if !slices.Equal(req.Subject.Organization, []string{NodesGroup}) {
		return fmt.Errorf("subject organization is not set to %s", NodesGroup)
	}
	if !strings.HasPrefix(req.Subject.CommonName, NodeUserPrefix) || len(req.Subject.CommonName) == len(NodeUserPrefix) {
		return fmt.Errorf("subject common name does not begin with %s", NodeUserPrefix)
	}
	return nil
}

// checkUsages allows digital signature, key encipherment and the one
// extended usage ext, which must be present.
func checkUsages(usages []certificatesv1.KeyUsage, ext certificatesv1.KeyUsage) error {
	for _, u := range usages {
		if u != ext && u != certificatesv1.UsageDigitalSignature && u != certificatesv1.UsageKeyEncipherment {
			return fmt.Errorf("usage %q is not allowed for this signer", u)
		}
	}
	if !slices.Contains(usages, ext) {
		return fmt.Errorf("usages must include %q", ext)
	}
	return nil
}
