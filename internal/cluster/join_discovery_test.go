package cluster

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
	"github.com/skiff-dev/skiff/internal/controllers/bootstrapsigner"
)

const (
	testTokenID     = "abcdef"
	testTokenSecret = "0123456789abcdef"
	testToken       = testTokenID + "." + testTokenSecret
)

// clusterInfoServer serves cluster-info with the server's own certificate
// as CA; sign decides the signature (from the n-th request on, counting
// from 1), "" for none.
func clusterInfoServer(t *testing.T, sign func(content string, n int) string) (*httptest.Server, []byte) {
	t.Helper()
	var calls atomic.Int32
	var caPEM []byte
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/kube-public/configmaps/cluster-info" || r.Header.Get("Authorization") != "" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		content := "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    certificate-authority-data: " +
			encodeB64(caPEM) + "\n    server: https://example:6443\n"
		cm := corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"},
			Data: map[string]string{bootstrapsigner.KubeconfigKey: content}}
		if sig := sign(content, int(calls.Add(1))); sig != "" {
			cm.Data[bootstrapsigner.SignaturePrefix+testTokenID] = sig
		}
		_ = json.NewEncoder(w).Encode(cm)
	}))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	return ts, caPEM
}

func signWith(id, secret string, from int) func(string, int) string {
	return func(content string, n int) string {
		if n < from {
			return ""
		}
		sig, _ := bootstrapsigner.Sign(content, id, secret)
		return sig
	}
}

func TestDiscoverCA(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sign    func(string, int) string
		pin     string // "good", "bad" or "" (none)
		unsafe  bool
		wantErr string
	}{
		{name: "signed and pinned", sign: signWith(testTokenID, testTokenSecret, 1), pin: "good"},
		{name: "signed after a while", sign: signWith(testTokenID, testTokenSecret, 3), pin: "good"},
		{name: "unsafe without pin", sign: signWith(testTokenID, testTokenSecret, 1), unsafe: true},
		{name: "no pin refused", sign: signWith(testTokenID, testTokenSecret, 1), wantErr: "refusing to join without --ca-cert-hash"},
		{name: "pin mismatch", sign: signWith(testTokenID, testTokenSecret, 1), pin: "bad", wantErr: "not the pinned"},
		{name: "signed with another secret", sign: signWith(testTokenID, "fedcba9876543210", 1), pin: "good", wantErr: "is not signed with token"},
		{name: "bad signature even when unsafe", sign: signWith(testTokenID, "fedcba9876543210", 1), unsafe: true, wantErr: "is not signed with token"},
		{name: "never signed", sign: func(string, int) string { return "" }, pin: "good", wantErr: "has no signature for token abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, caPEM := clusterInfoServer(t, tc.sign)
			cfg := JoinConfig{Server: ts.URL, Token: testToken, UnsafeSkipCAVerification: tc.unsafe, DiscoveryTimeout: time.Second}
			switch tc.pin {
			case "good":
				cfg.CAHash, _ = pki.CAHash(caPEM)
			case "bad":
				cfg.CAHash = "sha256:" + strings.Repeat("0", 64)
			}
			got, err := discoverCA(context.Background(), cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(caPEM) {
				t.Errorf("CA = %q, want the server's", got)
			}
		})
	}
}

func TestDiscoverCAServerDown(t *testing.T) {
	ts, _ := clusterInfoServer(t, signWith(testTokenID, testTokenSecret, 1))
	url := ts.URL
	ts.Close()
	_, err := discoverCA(context.Background(), JoinConfig{Server: url, Token: testToken, UnsafeSkipCAVerification: true, DiscoveryTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("err = %v, want the server not answering", err)
	}
}

func TestJoinRefusesWithoutPin(t *testing.T) {
	_, _, err := Join(context.Background(), JoinConfig{Server: "https://127.0.0.1:1", Token: testToken, NodeName: "n1", OutputDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--unsafe-skip-ca-verification") {
		t.Fatalf("err = %v, want a refusal naming --unsafe-skip-ca-verification", err)
	}
}

func TestJoinRefusesMalformedToken(t *testing.T) {
	_, _, err := Join(context.Background(), JoinConfig{Server: "https://127.0.0.1:1", Token: "abc.def", UnsafeSkipCAVerification: true})
	if err == nil || !strings.Contains(err.Error(), "must look like") {
		t.Fatalf("err = %v", err)
	}
}
