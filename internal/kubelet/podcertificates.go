package kubelet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

const (
	// podCertPollTimeout bounds how long one volume set-up waits for a
	// signer; the pod's next sync looks again.
	podCertPollTimeout = 10 * time.Second
	// podCertPollInterval is how often the request is read while waiting.
	podCertPollInterval = 250 * time.Millisecond
)

// podCertKey identifies one podCertificate source of a pod.
type podCertKey struct {
	pod    types.UID
	volume string
	source int
}

// podCredentials are an issued key and certificate chain, both PEM.
type podCredentials struct {
	keyPEM    []byte
	chainPEM  []byte
	refreshAt time.Time
}

// pendingCert is a request created and not yet answered, with the key
// whose public half it carries.
type pendingCert struct {
	name   string
	key    crypto.Signer
	keyPEM []byte
}

// podCertState is what the kubelet holds for one source: the credentials
// it serves and the request that will replace them.
type podCertState struct {
	mu      sync.Mutex // one set-up of the source at a time
	issued  *podCredentials
	pending *pendingCert
}

// podCertificates serves the podCertificate sources of projected volumes
// as upstream's kubelet does: it generates a key, asks the source's signer
// for a certificate through a PodCertificateRequest and projects both,
// requesting a new certificate with a new key once the signer's
// beginRefreshAt passes while it keeps serving the old one.
type podCertificates struct {
	client   kubernetes.Interface
	nodeName string
	// nodeUID returns the UID of the node object, which requests carry.
	nodeUID func(ctx context.Context) (types.UID, error)
	clock   clock.Clock
	rand    io.Reader // key generation and CSR signatures
	log     *slog.Logger
	// pollTimeout and pollInterval pace the wait for a first certificate.
	pollTimeout, pollInterval time.Duration

	mu     sync.Mutex
	states map[podCertKey]*podCertState
}

func newPodCertificates(client kubernetes.Interface, nodeName string, clk clock.Clock, rnd io.Reader, log *slog.Logger) *podCertificates {
	pc := &podCertificates{
		client: client, nodeName: nodeName, clock: clk, rand: rnd, log: log,
		pollTimeout: podCertPollTimeout, pollInterval: podCertPollInterval,
		states: map[podCertKey]*podCertState{},
	}
	pc.nodeUID = nodeUIDGetter(client, nodeName)
	return pc
}

// nodeUIDGetter reads the node's UID once it is registered and caches it.
func nodeUIDGetter(client kubernetes.Interface, nodeName string) func(context.Context) (types.UID, error) {
	var mu sync.Mutex
	var uid types.UID
	return func(ctx context.Context) (types.UID, error) {
		mu.Lock()
		defer mu.Unlock()
		if uid != "" {
			return uid, nil
		}
		node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("get node %q: %w", nodeName, err)
		}
		uid = node.UID
		return uid, nil
	}
}

// files projects the source-th source of the pod's volume, a
// podCertificate one, with the volume's default mode.
func (pc *podCertificates) files(ctx context.Context, pod *v1.Pod, volume string, source int, src *v1.PodCertificateProjection, defMode *int32) (map[string]volumeFile, error) {
	if pc == nil {
		return nil, errNoPodCertificates
	}
	for _, p := range []string{src.CredentialBundlePath, src.KeyPath, src.CertificateChainPath} {
		if p == "" {
			continue
		}
		if err := safeRelPath(p); err != nil {
			return nil, err
		}
	}
	creds, err := pc.credentials(ctx, pod, podCertKey{pod: pod.UID, volume: volume, source: source}, src)
	if err != nil {
		return nil, err
	}
	mode := fileMode(nil, defMode)
	out := map[string]volumeFile{}
	if src.CredentialBundlePath != "" {
		bundle := append(append([]byte{}, creds.keyPEM...), creds.chainPEM...)
		out[filepath.Clean(src.CredentialBundlePath)] = volumeFile{bundle, mode}
	}
	if src.KeyPath != "" {
		out[filepath.Clean(src.KeyPath)] = volumeFile{creds.keyPEM, mode}
	}
	if src.CertificateChainPath != "" {
		out[filepath.Clean(src.CertificateChainPath)] = volumeFile{creds.chainPEM, mode}
	}
	return out, nil
}

// credentials returns the source's current credentials, requesting them
// or their replacement when due.
func (pc *podCertificates) credentials(ctx context.Context, pod *v1.Pod, key podCertKey, src *v1.PodCertificateProjection) (*podCredentials, error) {
	pc.mu.Lock()
	st := pc.states[key]
	if st == nil {
		st = &podCertState{}
		pc.states[key] = st
	}
	pc.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	if st.issued != nil && pc.clock.Now().Before(st.issued.refreshAt) {
		return st.issued, nil
	}
	// keepOld serves the credentials still held while a refresh fails or
	// waits: the pod keeps running on them, and the next sync tries again.
	keepOld := func(err error) (*podCredentials, error) {
		if st.issued == nil {
			return nil, err
		}
		if err != nil {
			pc.log.Warn("refresh pod certificate", "pod", podKey(pod), "volume", key.volume, "err", err)
		}
		return st.issued, nil
	}
	if st.pending == nil {
		p, err := pc.request(ctx, pod, src)
		if err != nil {
			return keepOld(err)
		}
		st.pending = p
	}
	// Only a first certificate is worth holding up the pod for.
	timeout := pc.pollTimeout
	if st.issued != nil {
		timeout = 0
	}
	creds, done, err := pc.wait(ctx, pod.Namespace, st.pending, timeout)
	if done {
		// Issued, refused or gone: a later attempt starts over.
		st.pending = nil
	}
	if err != nil {
		return keepOld(err)
	}
	if creds == nil {
		return keepOld(fmt.Errorf("waiting for signer %q to issue PodCertificateRequest %s/%s", src.SignerName, pod.Namespace, st.pending.name))
	}
	st.issued = creds
	return creds, nil
}

// request generates a key and creates a PodCertificateRequest for it.
func (pc *podCertificates) request(ctx context.Context, pod *v1.Pod, src *v1.PodCertificateProjection) (*pendingCert, error) {
	key, err := generatePodCertKey(src.KeyType, pc.rand)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal %s private key: %w", src.KeyType, err)
	}
	csr, err := x509.CreateCertificateRequest(pc.rand, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("create stub PKCS#10 request: %w", err)
	}
	saName := podServiceAccount(pod)
	sa, err := pc.client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, saName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get service account %q: %w", saName, err)
	}
	nodeUID, err := pc.nodeUID(ctx)
	if err != nil {
		return nil, err
	}
	pcr := &certificatesv1.PodCertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: pod.Name + "-",
			Namespace:    pod.Namespace,
			// The garbage collector removes the request with the pod.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, Controller: ptr.To(false),
			}},
		},
		Spec: certificatesv1.PodCertificateRequestSpec{
			SignerName:                src.SignerName,
			PodName:                   pod.Name,
			PodUID:                    pod.UID,
			ServiceAccountName:        saName,
			ServiceAccountUID:         sa.UID,
			NodeName:                  types.NodeName(pc.nodeName),
			NodeUID:                   nodeUID,
			MaxExpirationSeconds:      src.MaxExpirationSeconds, // nil: the API server's default
			StubPKCS10Request:         csr,
			UnverifiedUserAnnotations: src.UserAnnotations,
		},
	}
	created, err := pc.client.CertificatesV1().PodCertificateRequests(pod.Namespace).Create(ctx, pcr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create PodCertificateRequest for signer %q: %w", src.SignerName, err)
	}
	pc.log.Debug("requested pod certificate", "pod", podKey(pod), "signer", src.SignerName, "request", created.Name)
	return &pendingCert{
		name:   created.Name,
		key:    key,
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
	}, nil
}

// wait reads the request until the signer answers or timeout passes on
// the clock. done reports an answer (or a request gone), after which the
// pending request is spent; creds is nil and err nil while it waits.
func (pc *podCertificates) wait(ctx context.Context, namespace string, p *pendingCert, timeout time.Duration) (creds *podCredentials, done bool, err error) {
	deadline := pc.clock.Now().Add(timeout)
	for {
		pcr, err := pc.client.CertificatesV1().PodCertificateRequests(namespace).Get(ctx, p.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, true, fmt.Errorf("PodCertificateRequest %s/%s is gone", namespace, p.name)
		case err != nil:
			return nil, false, fmt.Errorf("get PodCertificateRequest %s/%s: %w", namespace, p.name, err)
		}
		for _, t := range []string{certificatesv1.PodCertificateRequestConditionTypeDenied, certificatesv1.PodCertificateRequestConditionTypeFailed} {
			if c := meta.FindStatusCondition(pcr.Status.Conditions, t); c != nil && c.Status == metav1.ConditionTrue {
				return nil, true, fmt.Errorf("PodCertificateRequest %s/%s for signer %q: %s: %s: %s",
					namespace, p.name, pcr.Spec.SignerName, t, c.Reason, c.Message)
			}
		}
		if c := meta.FindStatusCondition(pcr.Status.Conditions, certificatesv1.PodCertificateRequestConditionTypeIssued); c != nil &&
			c.Status == metav1.ConditionTrue && pcr.Status.CertificateChain != "" {
			creds, err := issuedCredentials(pcr, p)
			return creds, true, err
		}
		if !pc.clock.Now().Before(deadline) {
			return nil, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-pc.clock.After(pc.pollInterval):
		}
	}
}

// issuedCredentials checks that the issued chain certifies the pending
// key and works out when to refresh it.
func issuedCredentials(pcr *certificatesv1.PodCertificateRequest, p *pendingCert) (*podCredentials, error) {
	chain := []byte(pcr.Status.CertificateChain)
	block, _ := pem.Decode(chain)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("PodCertificateRequest %s/%s: certificate chain has no certificate", pcr.Namespace, pcr.Name)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PodCertificateRequest %s/%s: parse leaf certificate: %w", pcr.Namespace, pcr.Name, err)
	}
	if pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(p.key.Public()) {
		return nil, fmt.Errorf("PodCertificateRequest %s/%s: leaf certificate does not match the requested key", pcr.Namespace, pcr.Name)
	}
	// Without beginRefreshAt, refresh at half of the lifetime.
	notBefore, notAfter := leaf.NotBefore, leaf.NotAfter
	if pcr.Status.NotBefore != nil {
		notBefore = pcr.Status.NotBefore.Time
	}
	if pcr.Status.NotAfter != nil {
		notAfter = pcr.Status.NotAfter.Time
	}
	refreshAt := notBefore.Add(notAfter.Sub(notBefore) / 2)
	if pcr.Status.BeginRefreshAt != nil {
		refreshAt = pcr.Status.BeginRefreshAt.Time
	}
	return &podCredentials{keyPEM: p.keyPEM, chainPEM: chain, refreshAt: refreshAt}, nil
}

// generatePodCertKey makes a private key of a podCertificate keyType.
func generatePodCertKey(keyType string, rnd io.Reader) (crypto.Signer, error) {
	switch keyType {
	case "RSA3072":
		return rsa.GenerateKey(rnd, 3072)
	case "RSA4096":
		return rsa.GenerateKey(rnd, 4096)
	case "ECDSAP256":
		return ecdsa.GenerateKey(elliptic.P256(), rnd)
	case "ECDSAP384":
		return ecdsa.GenerateKey(elliptic.P384(), rnd)
	case "ECDSAP521":
		return ecdsa.GenerateKey(elliptic.P521(), rnd)
	case "ED25519":
		_, key, err := ed25519.GenerateKey(rnd)
		return key, err
	}
	return nil, fmt.Errorf("unsupported podCertificate keyType %q", keyType)
}

// podServiceAccount is the pod's ServiceAccount, "default" when unset.
func podServiceAccount(pod *v1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return "default"
}

// forgetPod drops what the kubelet holds for a pod that no longer runs;
// its requests go with the pod through their owner reference.
func (pc *podCertificates) forgetPod(uid types.UID) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for k := range pc.states {
		if k.pod == uid {
			delete(pc.states, k)
		}
	}
}

// errNoPodCertificates is the error of a kubelet without the manager.
var errNoPodCertificates = errors.New("podCertificate projection is not available")
