package kubelet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func caPEM(t *testing.T, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func ctb(name, signer string, labels map[string]string, pems ...string) *certificatesv1.ClusterTrustBundle {
	return &certificatesv1.ClusterTrustBundle{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: strings.Join(pems, "")},
	}
}

// TestTrustBundleProjection follows upstream's kubelet ClusterTrustBundle
// manager and the conformance specs of projected_clustertrustbundle.go:
// by name, by signer + selector (nil matches nothing, empty everything),
// deduplicated certificates, optional sources as empty files, and errors
// otherwise.
func TestTrustBundleProjection(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b, c := caPEM(t, "a"), caPEM(t, "b"), caPEM(t, "c")
	const signer = "test.test/signer-one"
	client := fake.NewClientset(
		ctb("no-signer", "", nil, a),
		ctb("test.test:signer-one:alive", signer, map[string]string{"signer.alive": "true"}, a, b),
		ctb("test.test:signer-one:alive2", signer, map[string]string{"signer.alive": "true"}, b),
		ctb("test.test:signer-one:dead", signer, map[string]string{"signer.alive": "false"}, c),
		ctb("test.test:other:x", "test.test/other", map[string]string{"signer.alive": "true"}, c),
	)
	changes := make(chan struct{}, 10)
	tb := newTrustBundles(ctx.Done(), client, func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	})

	certs := func(data []byte) []string {
		var out []string
		for rest := data; ; {
			var blk *pem.Block
			if blk, rest = pem.Decode(rest); blk == nil {
				return out
			}
			out = append(out, string(pem.EncodeToMemory(blk)))
		}
	}
	same := func(got []string, want ...string) bool {
		if len(got) != len(want) {
			return false
		}
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				return false
			}
		}
		return true
	}
	alive := &metav1.LabelSelector{MatchLabels: map[string]string{"signer.alive": "true"}}
	for _, tc := range []struct {
		name    string
		src     v1.ClusterTrustBundleProjection
		want    []string
		wantErr bool
	}{
		{name: "by name", src: v1.ClusterTrustBundleProjection{Name: ptr.To("no-signer")}, want: []string{a}},
		{name: "missing name, optional", src: v1.ClusterTrustBundleProjection{Name: ptr.To("nope"), Optional: ptr.To(true)}},
		{name: "missing name", src: v1.ClusterTrustBundleProjection{Name: ptr.To("nope"), Optional: ptr.To(false)}, wantErr: true},
		{name: "signer and labels, deduplicated", src: v1.ClusterTrustBundleProjection{SignerName: ptr.To(signer), LabelSelector: alive}, want: []string{a, b}},
		{name: "signer, empty selector", src: v1.ClusterTrustBundleProjection{SignerName: ptr.To(signer), LabelSelector: &metav1.LabelSelector{}}, want: []string{a, b, c}},
		{name: "signer, nil selector, optional", src: v1.ClusterTrustBundleProjection{SignerName: ptr.To(signer), Optional: ptr.To(true)}},
		{name: "signer, no match", src: v1.ClusterTrustBundleProjection{SignerName: ptr.To(signer),
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"signer.alive": "unknown"}}}, wantErr: true},
		{name: "neither name nor signer", src: v1.ClusterTrustBundleProjection{}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tb.anchors(ctx, &tc.src)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("anchors = %q, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !same(certs(got), tc.want...) {
				t.Fatalf("anchors = %q, want the certificates %q", got, tc.want)
			}
		})
	}

	// A new bundle is noticed (the kubelet then wakes the pods) and served.
	for len(changes) > 0 {
		<-changes
	}
	if _, err := client.CertificatesV1().ClusterTrustBundles().Create(ctx, ctb("late", "", nil, c), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("no change notification for a new ClusterTrustBundle")
	}
	got, err := tb.anchors(ctx, &v1.ClusterTrustBundleProjection{Name: ptr.To("late")})
	if err != nil || !same(certs(got), c) {
		t.Fatalf("late bundle = %q, %v", got, err)
	}
}
