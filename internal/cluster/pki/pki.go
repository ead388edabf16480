// Package pki creates and loads the cluster's certificate authority, the
// API server's serving certificate and client certificates, and writes
// kubeconfig files that use them.
package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options says what the serving certificate must cover.
type Options struct {
	// Hosts are extra DNS names or IP addresses of the API server.
	Hosts []string
}

// Bundle is the loaded PKI of a server.
type Bundle struct {
	CA           *x509.Certificate
	CAKey        *ecdsa.PrivateKey
	CAPEM        []byte
	CAPool       *x509.CertPool
	Serving      tls.Certificate
	AdminCertPEM []byte
	AdminKeyPEM  []byte
	// FrontProxyCAPEM signs FrontProxyClient, the certificate the API
	// server presents to extension API servers; it is a CA of its own, as
	// upstream's, so no user certificate can pass for the proxy.
	FrontProxyCAPEM  []byte
	FrontProxyClient tls.Certificate
}

// FrontProxyClientName is the front-proxy client certificate's common
// name, the one extension servers accept identity headers from.
const FrontProxyClientName = "front-proxy-client"

// defaultHosts are always in the serving certificate.
var defaultHosts = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local", "127.0.0.1", "::1"}

// Ensure loads the PKI under dir, creating whatever is missing; the serving
// certificate is re-issued when it does not cover every host.
func Ensure(dir string, opts Options) (*Bundle, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pki dir: %w", err)
	}
	b := &Bundle{}
	var err error
	b.CA, b.CAKey, b.CAPEM, err = ensureCA(dir, "ca", "skiff-ca")
	if err != nil {
		return nil, err
	}
	b.CAPool = x509.NewCertPool()
	b.CAPool.AddCert(b.CA)

	hosts := append(slices.Clone(defaultHosts), opts.Hosts...)
	certPEM, keyPEM, err := loadPair(dir, "server")
	if err != nil || !covers(certPEM, hosts) {
		certPEM, keyPEM, err = b.issue(pkix.Name{CommonName: "skiff-apiserver"}, hosts, x509.ExtKeyUsageServerAuth, 10*365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		if err := writePair(dir, "server", certPEM, keyPEM); err != nil {
			return nil, err
		}
	}
	if b.Serving, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("load serving certificate: %w", err)
	}

	b.AdminCertPEM, b.AdminKeyPEM, err = loadPair(dir, "admin")
	if err != nil {
		b.AdminCertPEM, b.AdminKeyPEM, err = b.IssueClientCert("skiff-admin", []string{"system:masters"}, 10*365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		if err := writePair(dir, "admin", b.AdminCertPEM, b.AdminKeyPEM); err != nil {
			return nil, err
		}
	}
	if err := b.ensureFrontProxy(dir); err != nil {
		return nil, err
	}
	return b, nil
}

// ensureFrontProxy loads or creates the front-proxy CA and client pair.
func (b *Bundle) ensureFrontProxy(dir string) error {
	ca := &Bundle{}
	var err error
	ca.CA, ca.CAKey, b.FrontProxyCAPEM, err = ensureCA(dir, "front-proxy-ca", "skiff-front-proxy-ca")
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := loadPair(dir, "front-proxy-client")
	if err != nil {
		certPEM, keyPEM, err = ca.IssueClientCert(FrontProxyClientName, nil, 10*365*24*time.Hour)
		if err != nil {
			return err
		}
		if err := writePair(dir, "front-proxy-client", certPEM, keyPEM); err != nil {
			return err
		}
	}
	if b.FrontProxyClient, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("load front-proxy client certificate: %w", err)
	}
	return nil
}

// ensureCA loads the CA pair dir/name.{crt,key}, creating it (subject cn)
// when missing.
func ensureCA(dir, name, cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	certPEM, keyPEM, err := loadPair(dir, name)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil, err
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: cn},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("create CA: %w", err)
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if keyPEM, err = encodeKey(key); err != nil {
			return nil, nil, nil, err
		}
		if err := writePair(dir, name, certPEM, keyPEM); err != nil {
			return nil, nil, nil, err
		}
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s.crt: %w", name, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, nil, fmt.Errorf("%s.key: no PEM block", name)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s.key: %w", name, err)
	}
	return cert, key, certPEM, nil
}

// IssueClientCert signs a client certificate for user cn in groups orgs.
func (b *Bundle) IssueClientCert(cn string, orgs []string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	return b.issue(pkix.Name{CommonName: cn, Organization: orgs}, nil, x509.ExtKeyUsageClientAuth, ttl)
}

// IssueServingCert signs a serving certificate for hosts (names and IPs),
// such as a kubelet's.
func (b *Bundle) IssueServingCert(cn string, hosts []string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	return b.issue(pkix.Name{CommonName: cn}, hosts, x509.ExtKeyUsageServerAuth, ttl)
}

func (b *Bundle) issue(subject pkix.Name, hosts []string, usage x509.ExtKeyUsage, ttl time.Duration) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.CA, &key.PublicKey, b.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", subject.CommonName, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// covers reports whether the certificate is valid for every host.
func covers(certPEM []byte, hosts []string) bool {
	c, err := parseCert(certPEM)
	if err != nil || time.Now().After(c.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if h != "" && c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func loadPair(dir, name string) ([]byte, []byte, error) {
	cert, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, nil, err
	}
	key, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func writePair(dir, name string, certPEM, keyPEM []byte) error {
	if err := os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		return fmt.Errorf("write %s.key: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), certPEM, 0o644); err != nil {
		return fmt.Errorf("write %s.crt: %w", name, err)
	}
	return nil
}

// ServerTLSConfig is the API server's TLS configuration: client
// certificates are requested and, when given, verified against the CA.
func ServerTLSConfig(b *Bundle) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    b.CAPool,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// WriteKubeconfig writes a kubeconfig with embedded credentials for user.
// It is written only when its content changes, so a restart does not
// disturb tools watching the file.
func WriteKubeconfig(path, server string, caPEM, certPEM, keyPEM []byte, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["skiff"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["skiff"] = &clientcmdapi.Context{Cluster: "skiff", AuthInfo: user}
	cfg.CurrentContext = "skiff"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return os.Rename(tmp, path)
}

// SignCSR issues a client certificate for a PEM certificate request,
// with the request's subject and public key.
func (b *Bundle) SignCSR(csrPEM []byte, ttl time.Duration) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("not a PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      req.Subject,
		NotBefore:    time.Now().Add(-5 * time.Minute),
		NotAfter:     time.Now().Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.CA, req.PublicKey, b.CAKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// CAHash is the kubeadm-style pin of a CA: sha256 of its public key info.
func CAHash(caPEM []byte) (string, error) {
	cert, err := parseCert(caPEM)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
