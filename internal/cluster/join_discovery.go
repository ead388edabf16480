package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/controllers/bootstrapsigner"
)

// defaultDiscoveryTimeout is how long a joining node waits for the
// bootstrap signer to sign cluster-info with its token.
const defaultDiscoveryTimeout = 30 * time.Second

// errNoAnswer marks a server that cannot be reached, so that the caller
// may try the next one.
var errNoAnswer = errors.New("does not answer")

// discoverCA finds the cluster CA the way kubeadm's token discovery does:
// it reads cluster-info without trusting the server yet, waits for the
// jws-kubeconfig-<token-id> signature, checks it with the token (only the
// cluster knows the token secret, so a valid signature proves the content
// came from it), then checks the CA against the pinned hash.
func discoverCA(ctx context.Context, cfg JoinConfig) ([]byte, error) {
	if cfg.CAHash == "" && !cfg.UnsafeSkipCAVerification {
		return nil, errors.New("join: refusing to join without --ca-cert-hash (printed by `skiff token create`); pass --unsafe-skip-ca-verification to trust the server unchecked")
	}
	id, secret, err := bootstrapsigner.ParseToken(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	timeout := cfg.DiscoveryTimeout
	if timeout <= 0 {
		timeout = defaultDiscoveryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := min(time.Second, timeout/10)
	key := bootstrapsigner.SignaturePrefix + id
	var lastErr error
	for {
		cm, err := fetchClusterInfo(ctx, cfg.Server)
		switch {
		case ctx.Err() != nil && lastErr != nil:
			return nil, lastErr
		case errors.Is(err, errNoAnswer):
			return nil, err
		case err != nil:
			lastErr = err // e.g. not yet allowed anonymously: try again
		case cm.Data[key] == "":
			lastErr = fmt.Errorf("join: cluster-info from %s has no signature for token %s after %v; the token is unknown, expired or not for signing (create one with `skiff token create`)", cfg.Server, id, timeout)
		default:
			return verifiedCA(cm, cm.Data[key], id, secret, cfg)
		}
		select {
		case <-ctx.Done():
			return nil, lastErr
		case <-time.After(interval):
		}
	}
}

// verifiedCA checks cluster-info's signature and the CA pin and returns
// the CA.
func verifiedCA(cm *corev1.ConfigMap, sig, id, secret string, cfg JoinConfig) ([]byte, error) {
	content := cm.Data[bootstrapsigner.KubeconfigKey]
	if !bootstrapsigner.Verify(sig, content, id, secret) {
		return nil, fmt.Errorf("join: cluster-info from %s is not signed with token %s: the token is wrong or the answer was tampered with", cfg.Server, id)
	}
	kc, err := clientcmd.Load([]byte(content))
	if err != nil {
		return nil, fmt.Errorf("join: cluster-info kubeconfig: %w", err)
	}
	var caPEM []byte
	for _, c := range kc.Clusters {
		if len(c.CertificateAuthorityData) > 0 {
			caPEM = c.CertificateAuthorityData
			break
		}
	}
	if caPEM == nil {
		return nil, errors.New("join: cluster-info has no CA")
	}
	if cfg.CAHash == "" {
		return caPEM, nil // --unsafe-skip-ca-verification
	}
	got, err := pki.CAHash(caPEM)
	if err != nil {
		return nil, fmt.Errorf("join: cluster-info CA: %w", err)
	}
	if !strings.EqualFold(got, strings.TrimSpace(cfg.CAHash)) {
		return nil, fmt.Errorf("join: the server's CA hash is %s, not the pinned %s; check --ca-cert-hash (or the server address)", got, cfg.CAHash)
	}
	return caPEM, nil
}

// fetchClusterInfo reads kube-public/cluster-info anonymously, without
// verifying the server: what it says is checked by the caller.
func fetchClusterInfo(ctx context.Context, server string) (*corev1.ConfigMap, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // checked by signature and CA pin
		DialContext:     (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(server, "/")+"/api/v1/namespaces/kube-public/configmaps/cluster-info", nil)
	if err != nil {
		return nil, fmt.Errorf("join: bad --server %q: %w", server, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("join: the server %s %w (%v); check --server", server, errNoAnswer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("join: reading cluster-info from %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("join: reading cluster-info from %s: %s", server, resp.Status)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("join: cluster-info: %w", err)
	}
	return &cm, nil
}
