package csrsigning

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
)

// MinDuration is upstream's shortest certificate lifetime.
const MinDuration = 600 * time.Second

// DefaultMaxDuration is upstream's --cluster-signing-duration default.
const DefaultMaxDuration = 365 * 24 * time.Hour

// backdate covers clocks that are a little behind the signer's.
const backdate = 5 * time.Minute

// CA signs certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Duration is the lifetime of a certificate for csr: the requested
// expirationSeconds capped at limit, never under MinDuration.
func Duration(csr *certificatesv1.CertificateSigningRequest, limit time.Duration) time.Duration {
	if limit <= 0 {
		limit = DefaultMaxDuration
	}
	d := limit
	if s := csr.Spec.ExpirationSeconds; s != nil {
		d = min(time.Duration(*s)*time.Second, limit)
	}
	return max(d, MinDuration)
}

// sign issues a certificate for req with the given usages; SANs are copied
// only when serving is true (the signer's validation decided they are
// allowed).
func (ca CA) sign(req *x509.CertificateRequest, usages []certificatesv1.KeyUsage, serving bool, ttl time.Duration, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               req.Subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(ttl),
		BasicConstraintsValid: true,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	for _, u := range usages {
		switch u {
		case certificatesv1.UsageDigitalSignature:
			tmpl.KeyUsage |= x509.KeyUsageDigitalSignature
		case certificatesv1.UsageKeyEncipherment:
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		case certificatesv1.UsageClientAuth:
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		case certificatesv1.UsageServerAuth:
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		}
	}
	if serving {
		tmpl.DNSNames, tmpl.IPAddresses = req.DNSNames, req.IPAddresses
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
