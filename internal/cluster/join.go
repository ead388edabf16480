package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/controllers/bootstrapsigner"
	"github.com/skiff-dev/skiff/internal/controllers/csrapproving"
	"github.com/skiff-dev/skiff/internal/controllers/csrsigning"
	"github.com/skiff-dev/skiff/internal/kubelet"
)

// publishClusterInfo writes kube-public/cluster-info: the server URL and
// CA that a joining node reads (without credentials), checks against the
// bootstrap signer's signature for its token and its --ca-cert-hash.
func (s *Server) publishClusterInfo(ctx context.Context) error {
	client, err := s.Client()
	if err != nil {
		return err
	}
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    certificate-authority-data: %s\n    server: %s\n",
		encodeB64(s.pki.CAPEM), s.URL)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"}, Data: map[string]string{"kubeconfig": kc}}
	cms := client.CoreV1().ConfigMaps("kube-public")
	cur, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	case err == nil && cur.Data["kubeconfig"] != kc:
		// The bootstrap signer replaces the signatures of the old content.
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		cur.Data["kubeconfig"] = kc
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("publish cluster-info: %w", err)
	}
	return nil
}

// startCSRSigner runs, in the server that holds the CA key, the signer of
// approved certificate requests and the approver of node client requests
// (which asks the API server, by SubjectAccessReview, whether each
// requestor may have a node certificate).
func (s *Server) startCSRSigner(ctx context.Context) error {
	client, err := s.Client()
	if err != nil {
		return err
	}
	cfg := csrsigning.Config{
		CA:          csrsigning.CA{Cert: s.pki.CA, Key: s.pki.CAKey},
		MaxDuration: s.cfg.ClusterSigningDuration,
		Logger:      s.cfg.Logger.With("component", "csrsigning"),
	}
	s.components.Add(2)
	go func() {
		defer s.components.Done()
		if err := csrsigning.Run(ctx, client, cfg); err != nil {
			s.cfg.Logger.Error("certificate signer", "err", err)
		}
	}()
	go func() {
		defer s.components.Done()
		if err := csrapproving.Run(ctx, client, s.cfg.Logger.With("component", "csrapproving")); err != nil {
			s.cfg.Logger.Error("certificate approver", "err", err)
		}
	}()
	return nil
}

// CreateToken stores a new bootstrap token (valid for ttl) and returns it
// as "<id>.<secret>".
func CreateToken(ctx context.Context, client kubernetes.Interface, ttl time.Duration) (string, error) {
	id, secret := randomToken(6), randomToken(16)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"token-id": id, "token-secret": secret,
			"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
			"auth-extra-groups": "system:bootstrappers:skiff:default-node-token",
			"description":       "skiff token create",
		},
	}
	if ttl > 0 {
		sec.StringData["expiration"] = time.Now().Add(ttl).UTC().Format(time.RFC3339)
	}
	if _, err := client.CoreV1().Secrets("kube-system").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return id + "." + secret, nil
}

func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err) // the system's randomness failed; nothing sane to do
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

// JoinConfig says how a new node joins a cluster.
type JoinConfig struct {
	Server string // https://host:port
	Token  string
	// CAHash pins the cluster CA: sha256:<hex> of its public key.
	CAHash string
	// UnsafeSkipCAVerification allows joining without CAHash, trusting
	// any cluster-info whose signature matches the token.
	UnsafeSkipCAVerification bool
	NodeName                 string
	OutputDir                string // where kubelet.kubeconfig is written
	// DiscoveryTimeout bounds the wait for cluster-info's signature
	// (default 30 s).
	DiscoveryTimeout time.Duration
}

// Join obtains node credentials with a bootstrap token: it reads the CA
// from cluster-info (checking the token's signature and the pinned hash),
// asks for a client certificate for system:node:<name> with a
// CertificateSigningRequest, waits for the signed certificate and writes a
// kubeconfig. It returns the kubeconfig path and the CA.
func Join(ctx context.Context, cfg JoinConfig) (string, []byte, error) {
	token := strings.TrimSpace(cfg.Token)
	if _, _, err := bootstrapsigner.ParseToken(token); err != nil {
		return "", nil, fmt.Errorf("join: %w", err)
	}
	caPEM, err := discoverCA(ctx, cfg)
	if err != nil {
		return "", nil, err
	}
	restCfg := &rest.Config{Host: cfg.Server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, Timeout: 30 * time.Second}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return "", nil, err
	}
	certPEM, keyPEM, err := requestNodeCert(ctx, client, cfg.NodeName)
	if err != nil {
		if apierrors.IsUnauthorized(err) {
			return "", nil, errors.New("join: the server refused the token (wrong or expired?); create one with `skiff token create`")
		}
		return "", nil, err
	}
	if err := os.MkdirAll(cfg.OutputDir, 0o700); err != nil {
		return "", nil, err
	}
	path := filepath.Join(cfg.OutputDir, "kubelet.kubeconfig")
	if err := pki.WriteKubeconfig(path, cfg.Server, caPEM, certPEM, keyPEM, "system:node:"+cfg.NodeName); err != nil {
		return "", nil, err
	}
	return path, caPEM, nil
}

// requestNodeCert asks for a client certificate for system:node:<name>
// with a fresh key and waits for it to be signed.
func requestNodeCert(ctx context.Context, client kubernetes.Interface, nodeName string) (certPEM, keyPEM []byte, err error) {
	return requestCert(ctx, client, certRequest{
		subject:      pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		signer:       csrsigning.SignerName,
		usages:       []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		generateName: "node-csr-",
		timeout:      2 * time.Minute,
	})
}

// certRequest describes a certificate to ask the cluster for.
type certRequest struct {
	subject      pkix.Name
	dnsNames     []string
	ips          []net.IP
	signer       string
	usages       []certificatesv1.KeyUsage
	generateName string
	timeout      time.Duration
}

// requestCert creates a CertificateSigningRequest for a fresh key and waits
// for the certificate.
func requestCert(ctx context.Context, client kubernetes.Interface, r certRequest) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: r.subject, DNSNames: r.dnsNames, IPAddresses: r.ips,
	}, key)
	if err != nil {
		return nil, nil, err
	}
	csr := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: r.generateName},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: r.signer,
			Usages:     r.usages,
		},
	}
	created, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate request: %w", err)
	}
	certPEM, err = waitForCertificate(ctx, client, created.Name, r.timeout)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// waitForCertificate polls a request until it is signed, denied or
// failed, for at most timeout.
func waitForCertificate(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		csr, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if len(csr.Status.Certificate) > 0 {
				return csr.Status.Certificate, nil
			}
			for _, c := range csr.Status.Conditions {
				if c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
					return nil, fmt.Errorf("join: certificate request %s %s: %s", name, strings.ToLower(string(c.Type)), c.Message)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join: certificate request %s was not signed in time (approve it with `kubectl certificate approve %s`)", name, name)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// SelfSignedKubeletTLS makes a serving certificate for a joined node's
// kubelet API (the API server does not verify it, as upstream's default),
// trusting client certificates from the cluster CA.
func SelfSignedKubeletTLS(nodeName string, ip net.IP, caPEM []byte) (*kubelet.ServerTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: nodeName},
		DNSNames:     []string{nodeName, "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &kubelet.ServerTLS{
		CertPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:      pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		ClientCAPEM: caPEM,
	}, nil
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// KubeconfigCA returns the CA certificate a kubeconfig trusts.
func KubeconfigCA(path string) ([]byte, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	for _, c := range cfg.Clusters {
		if len(c.CertificateAuthorityData) > 0 {
			return c.CertificateAuthorityData, nil
		}
	}
	return nil, fmt.Errorf("kubeconfig %s has no CA", path)
}

// CreateJoinToken makes a join token with the admin kubeconfig (given, or
// found under dataDir) and returns it with the command that joins a node.
func CreateJoinToken(ctx context.Context, dataDir, kubeconfig string, ttl time.Duration) (token, hint string, err error) {
	if kubeconfig == "" {
		for _, p := range []string{filepath.Join(dataDir, "server", "admin.kubeconfig"), filepath.Join(dataDir, "admin.kubeconfig")} {
			if _, err := os.Stat(p); err == nil {
				kubeconfig = p
				break
			}
		}
		if kubeconfig == "" {
			return "", "", fmt.Errorf("token create: no admin kubeconfig under %s; use --kubeconfig", dataDir)
		}
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", "", err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return "", "", err
	}
	if token, err = CreateToken(ctx, client, ttl); err != nil {
		return "", "", err
	}
	caPEM, err := KubeconfigCA(kubeconfig)
	if err != nil {
		return "", "", err
	}
	hash, err := pki.CAHash(caPEM)
	if err != nil {
		return "", "", err
	}
	return token, fmt.Sprintf("join a node with:\n  skiff agent --server %s --token-file FILE --ca-cert-hash %s", restCfg.Host, hash), nil
}

// RenewIfExpiring replaces the node's client certificate in kubeconfig when
// less than window of its lifetime is left: it asks for a new one as the
// node itself (approved when the node may create certificatesigningrequests/selfnodeclient).
func RenewIfExpiring(ctx context.Context, kubeconfig, nodeName string, window time.Duration) (bool, error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return false, err
	}
	var certPEM []byte
	for _, a := range cfg.AuthInfos {
		certPEM = a.ClientCertificateData
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false, fmt.Errorf("%s has no client certificate", kubeconfig)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false, err
	}
	if time.Until(cert.NotAfter) > window {
		return false, nil
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return false, err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return false, err
	}
	caPEM, err := KubeconfigCA(kubeconfig)
	if err != nil {
		return false, err
	}
	newCert, keyPEM, err := requestNodeCert(ctx, client, nodeName)
	if err != nil {
		return false, fmt.Errorf("renew certificate: %w", err)
	}
	return true, pki.WriteKubeconfig(kubeconfig, restCfg.Host, caPEM, newCert, keyPEM, "system:node:"+nodeName)
}

// CredentialsConfig says where a node's credentials come from.
type CredentialsConfig struct {
	DataDir   string
	Servers   []string
	TokenFile string
	CAHash    string
	// UnsafeSkipCAVerification joins without a CA pin (--unsafe-skip-ca-verification).
	UnsafeSkipCAVerification bool
	NodeName                 string
	// RenewBefore renews the client certificate at start when it expires
	// within this window.
	RenewBefore time.Duration
	Logger      *slog.Logger
}

// NodeCredentials returns the node's kubeconfig under DataDir: joining the
// cluster with the token the first time (through the first server that
// answers), renewing the certificate when it is about to expire.
func NodeCredentials(ctx context.Context, cfg CredentialsConfig) (string, error) {
	path := filepath.Join(cfg.DataDir, "kubelet.kubeconfig")
	if _, err := os.Stat(path); err == nil {
		renewed, err := RenewIfExpiring(ctx, path, cfg.NodeName, cfg.RenewBefore)
		if err != nil {
			return "", fmt.Errorf("agent: %w", err)
		}
		if renewed && cfg.Logger != nil {
			cfg.Logger.Info("node client certificate renewed", "node", cfg.NodeName)
		}
		return path, nil
	}
	if len(cfg.Servers) == 0 || cfg.TokenFile == "" {
		return "", errors.New("agent: give --server and --token-file to join a cluster (or --kubeconfig)")
	}
	token, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("agent: read token: %w", err)
	}
	for _, s := range cfg.Servers {
		path, _, err = Join(ctx, JoinConfig{Server: s, Token: string(token), CAHash: cfg.CAHash,
			UnsafeSkipCAVerification: cfg.UnsafeSkipCAVerification, NodeName: cfg.NodeName, OutputDir: cfg.DataDir})
		if err == nil || !errors.Is(err, errNoAnswer) {
			break
		}
	}
	return path, err
}
