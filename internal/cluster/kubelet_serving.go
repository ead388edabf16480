package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/kubelet"
)

// KubeletServingConfig says which serving certificate a joined node's
// kubelet API needs and where it is kept.
type KubeletServingConfig struct {
	Kubeconfig string // the node's credentials
	DataDir    string
	NodeName   string
	NodeIP     net.IP
	// RenewBefore asks for a new certificate at start when the kept one
	// expires within this window.
	RenewBefore time.Duration
	// Wait bounds the wait for the cluster to issue it (default 30 s).
	Wait   time.Duration
	Logger *slog.Logger
}

// KubeletServingTLS returns the kubelet API's serving certificate for a
// joined node, signed by the cluster CA: the node asks for it with a
// kubernetes.io/kubelet-serving CertificateSigningRequest for its name and
// IP (which the cluster approves for the node's own addresses) and keeps it
// under DataDir. If the cluster does not issue one in time, the kubelet
// serves a self-signed certificate, which only an API server that does not
// verify kubelets accepts.
func KubeletServingTLS(ctx context.Context, cfg KubeletServingConfig) (*kubelet.ServerTLS, error) {
	caPEM, err := KubeconfigCA(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	return kubeletServingTLS(ctx, client, caPEM, cfg)
}

func kubeletServingTLS(ctx context.Context, client kubernetes.Interface, caPEM []byte, cfg KubeletServingConfig) (*kubelet.ServerTLS, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	certPath := filepath.Join(cfg.DataDir, "kubelet-serving.crt")
	keyPath := filepath.Join(cfg.DataDir, "kubelet-serving.key")
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	if certErr == nil && keyErr == nil && servingCertUsable(certPEM, keyPEM, caPEM, cfg.NodeName, cfg.NodeIP, cfg.RenewBefore) {
		return &kubelet.ServerTLS{CertPEM: certPEM, KeyPEM: keyPEM, ClientCAPEM: caPEM}, nil
	}
	// The cluster approves a serving certificate only for the node's own
	// addresses, which it knows once the node has registered: serve a
	// self-signed certificate until then, and swap in the issued one.
	self, err := SelfSignedKubeletTLS(cfg.NodeName, cfg.NodeIP, caPEM)
	if err != nil {
		return nil, err
	}
	cur, err := newServingCert(self.CertPEM, self.KeyPEM)
	if err != nil {
		return nil, err
	}
	self.Current = cur.get
	go func() {
		certPEM, keyPEM, err := requestServingCert(ctx, client, cfg, certPath, keyPath)
		if err == nil {
			err = cur.set(certPEM, keyPEM)
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("kubelet serving certificate not issued by the cluster; serving a self-signed one", "node", cfg.NodeName, "err", err)
			}
			return
		}
		log.Info("kubelet serving certificate issued by the cluster CA", "node", cfg.NodeName)
	}()
	return self, nil
}

// requestServingCert waits for the node to register, then asks for its
// serving certificate and keeps it under DataDir.
func requestServingCert(ctx context.Context, client kubernetes.Interface, cfg KubeletServingConfig, certPath, keyPath string) (certPEM, keyPEM []byte, err error) {
	wait := cfg.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	for {
		_, err := client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	req := certRequest{
		subject:      pkix.Name{CommonName: "system:node:" + cfg.NodeName, Organization: []string{"system:nodes"}},
		dnsNames:     []string{cfg.NodeName},
		signer:       certificatesv1.KubeletServingSignerName,
		usages:       []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		generateName: "kubelet-serving-",
		timeout:      wait,
	}
	if cfg.NodeIP != nil {
		req.ips = []net.IP{cfg.NodeIP}
	}
	certPEM, keyPEM, err = requestCert(ctx, client, req)
	if err == nil {
		err = writeServingPair(certPath, keyPath, certPEM, keyPEM)
	}
	return certPEM, keyPEM, err
}

// servingCert is the kubelet's current serving certificate, replaced once
// the cluster issues one.
type servingCert struct {
	p atomic.Pointer[tls.Certificate]
}

func newServingCert(certPEM, keyPEM []byte) (*servingCert, error) {
	c := &servingCert{}
	return c, c.set(certPEM, keyPEM)
}

func (c *servingCert) set(certPEM, keyPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("kubelet serving certificate: %w", err)
	}
	c.p.Store(&cert)
	return nil
}

func (c *servingCert) get() *tls.Certificate { return c.p.Load() }

// servingCertUsable reports whether a kept pair matches, chains to the
// CA for server auth, covers the node's name and IP, and is not about to
// expire.
func servingCertUsable(certPEM, keyPEM, caPEM []byte, name string, ip net.IP, renewBefore time.Duration) bool {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return false
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || time.Until(cert.NotAfter) <= renewBefore {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return false
	}
	if cert.VerifyHostname(name) != nil {
		return false
	}
	return ip == nil || cert.VerifyHostname(ip.String()) == nil
}

// writeServingPair writes the key (0600) and then the certificate, each
// through a temporary file so that a crash never leaves half a file.
func writeServingPair(certPath, keyPath string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{keyPath, keyPEM}, {certPath, certPEM}} {
		tmp := f.path + ".tmp"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return errors.Join(fmt.Errorf("write %s: %w", f.path, err), os.Remove(tmp))
		}
	}
	return nil
}
