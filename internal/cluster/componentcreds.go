package cluster

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
)

// Identities of the in-process control-plane components: upstream's
// default policy binds their roles to these user names.
const (
	schedulerUser         = "system:kube-scheduler"
	controllerManagerUser = "system:kube-controller-manager"
)

const (
	// componentCertTTL is the lifetime of a component's client
	// certificate, as kubeadm issues them.
	componentCertTTL = 365 * 24 * time.Hour
	// componentCertRenewBefore is how close to expiry a start reissues it.
	componentCertRenewBefore = 30 * 24 * time.Hour
)

// componentConfig returns the client configuration of an in-process
// component acting as user (no organizations), without a client-side rate
// limit as RESTConfig. Its kubeconfig DataDir/file carries a client
// certificate from the cluster CA, reissued when missing, from another CA,
// for another user, or near expiry.
func (s *Server) componentConfig(dataDir, file, user string) (*rest.Config, error) {
	path := filepath.Join(dataDir, file)
	certPEM, keyPEM, err := loadComponentCert(path, user, s.pki, time.Now())
	if err != nil {
		certPEM, keyPEM, err = s.pki.IssueClientCert(user, nil, componentCertTTL)
		if err != nil {
			return nil, fmt.Errorf("issue client certificate for %s: %w", user, err)
		}
	}
	if err := pki.WriteKubeconfig(path, s.URL, s.pki.CAPEM, certPEM, keyPEM, user); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	return cfg, nil
}

// loadComponentCert returns the certificate and key of the kubeconfig at
// path when they are still good for user.
func loadComponentCert(path, user string, bundle *pki.Bundle, now time.Time) (certPEM, keyPEM []byte, err error) {
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, nil, err
	}
	auth := kc.AuthInfos[user]
	if auth == nil || len(auth.ClientCertificateData) == 0 || len(auth.ClientKeyData) == 0 {
		return nil, nil, errors.New("no client certificate")
	}
	block, _ := pem.Decode(auth.ClientCertificateData)
	if block == nil {
		return nil, nil, errors.New("client certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if cert.Subject.CommonName != user || len(cert.Subject.Organization) != 0 {
		return nil, nil, fmt.Errorf("certificate is for %q", cert.Subject.CommonName)
	}
	if now.Add(componentCertRenewBefore).After(cert.NotAfter) {
		return nil, nil, errors.New("certificate expires soon")
	}
	opts := x509.VerifyOptions{Roots: bundle.CAPool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := cert.Verify(opts); err != nil {
		return nil, nil, err
	}
	return auth.ClientCertificateData, auth.ClientKeyData, nil
}
