package kubelet

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// pcSigner plays a signer on a fake clientset: it names created requests
// and, when auto is set, issues them at once from a test CA; otherwise
// tests call issue or deny.
type pcSigner struct {
	t      *testing.T
	client *fake.Clientset
	clock  *testclock.FakeClock
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caDER  []byte

	mu      sync.Mutex
	auto    bool
	created []*certificatesv1.PodCertificateRequest
}

func newPCSigner(t *testing.T, clk *testclock.FakeClock, objs ...runtime.Object) *pcSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IsCA: true, BasicConstraintsValid: true,
		KeyUsage:  x509.KeyUsageCertSign,
		NotBefore: clk.Now().Add(-time.Hour), NotAfter: clk.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	s := &pcSigner{t: t, client: fake.NewClientset(objs...), clock: clk, caKey: key, caCert: ca, caDER: der}
	s.client.PrependReactor("create", "podcertificaterequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pcr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.PodCertificateRequest)
		s.mu.Lock()
		defer s.mu.Unlock()
		// The fake clientset does not generate names; the object is passed
		// on to its tracker once named (and maybe issued).
		pcr.Name = fmt.Sprintf("%s%d", pcr.GenerateName, len(s.created))
		if s.auto {
			s.sign(pcr)
		}
		s.created = append(s.created, pcr.DeepCopy())
		return false, nil, nil
	})
	return s
}

func (s *pcSigner) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.created)
}

func (s *pcSigner) last() *certificatesv1.PodCertificateRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created[len(s.created)-1]
}

// sign fills the status as a signer would: one hour of life, refresh
// after 30 minutes.
func (s *pcSigner) sign(pcr *certificatesv1.PodCertificateRequest) {
	csr, err := x509.ParseCertificateRequest(pcr.Spec.StubPKCS10Request)
	if err != nil {
		s.t.Errorf("stub request: %v", err)
		return
	}
	notBefore := s.clock.Now()
	notAfter := notBefore.Add(time.Hour)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(notBefore.UnixNano()), NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, csr.PublicKey, s.caKey)
	if err != nil {
		s.t.Errorf("sign: %v", err)
		return
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.caDER})...)
	pcr.Status = certificatesv1.PodCertificateRequestStatus{
		Conditions: []metav1.Condition{{Type: certificatesv1.PodCertificateRequestConditionTypeIssued,
			Status: metav1.ConditionTrue, Reason: "Issued", Message: "ok", LastTransitionTime: metav1.NewTime(notBefore)}},
		CertificateChain: string(chain),
		NotBefore:        ptr.To(metav1.NewTime(notBefore)),
		BeginRefreshAt:   ptr.To(metav1.NewTime(notBefore.Add(30 * time.Minute))),
		NotAfter:         ptr.To(metav1.NewTime(notAfter)),
	}
}

// answer updates the named request with sign or a Denied condition.
func (s *pcSigner) answer(name string, deny bool) {
	s.t.Helper()
	ctx := context.Background()
	pcrs := s.client.CertificatesV1().PodCertificateRequests("ns")
	pcr, err := pcrs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	if deny {
		pcr.Status.Conditions = []metav1.Condition{{Type: certificatesv1.PodCertificateRequestConditionTypeDenied,
			Status: metav1.ConditionTrue, Reason: "NotAllowed", Message: "pod may not have it"}}
	} else {
		s.sign(pcr)
	}
	if _, err := pcrs.UpdateStatus(ctx, pcr, metav1.UpdateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

func pcTestPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "pod-uid"},
		Spec:       v1.PodSpec{ServiceAccountName: "sa", NodeName: "n1"},
	}
}

func pcTestSetup(t *testing.T, auto bool) (*pcSigner, *podCertificates, *testclock.FakeClock) {
	t.Helper()
	clk := testclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := newPCSigner(t, clk,
		&v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa", Namespace: "ns", UID: "sa-uid"}},
		&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}})
	s.auto = auto
	pc := newPodCertificates(s.client, "n1", clk, rand.Reader, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pc.pollTimeout = 0 // tests that wait set their own
	return s, pc, clk
}

var pcTestSource = &v1.PodCertificateProjection{
	SignerName: "example.com/signer", KeyType: "ECDSAP256",
	CredentialBundlePath: "bundle.pem", KeyPath: "dir/key.pem", CertificateChainPath: "chain.pem",
	UserAnnotations: map[string]string{"spiffe/path-overriding": "/custom"},
}

// pemBlocks splits PEM data into its blocks.
func pemBlocks(t *testing.T, data []byte) []*pem.Block {
	t.Helper()
	var out []*pem.Block
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			t.Fatalf("trailing non-PEM data: %q", rest)
		}
		out = append(out, b)
		rest = bytes.TrimSpace(rest)
	}
	return out
}

// checkCredentials asserts the files hold a PKCS#8 key, the chain, and a
// bundle of both, and that the leaf certifies the key; it returns the key.
func checkCredentials(t *testing.T, files map[string]volumeFile, mode os.FileMode) crypto.PublicKey {
	t.Helper()
	for _, name := range []string{"bundle.pem", "dir/key.pem", "chain.pem"} {
		if f, ok := files[name]; !ok || f.mode != mode {
			t.Fatalf("file %s: present %v, mode %v, want mode %v", name, ok, f.mode, mode)
		}
	}
	keyBlocks := pemBlocks(t, files["dir/key.pem"].data)
	if len(keyBlocks) != 1 || keyBlocks[0].Type != "PRIVATE KEY" {
		t.Fatalf("key file: want one PRIVATE KEY block, got %d", len(keyBlocks))
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlocks[0].Bytes)
	if err != nil {
		t.Fatalf("key is not PKCS#8: %v", err)
	}
	chain := pemBlocks(t, files["chain.pem"].data)
	if len(chain) != 2 || chain[0].Type != "CERTIFICATE" || chain[1].Type != "CERTIFICATE" {
		t.Fatalf("chain: want 2 CERTIFICATE blocks, got %d", len(chain))
	}
	bundle := pemBlocks(t, files["bundle.pem"].data)
	if len(bundle) != 3 || bundle[0].Type != "PRIVATE KEY" || !bytes.Equal(bundle[0].Bytes, keyBlocks[0].Bytes) ||
		!bytes.Equal(bundle[1].Bytes, chain[0].Bytes) || !bytes.Equal(bundle[2].Bytes, chain[1].Bytes) {
		t.Fatalf("bundle is not the key followed by the chain")
	}
	leaf, err := x509.ParseCertificate(chain[0].Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.(crypto.Signer).Public()
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
		t.Fatal("leaf certificate does not certify the projected key")
	}
	return pub
}

func TestPodCertificateIssued(t *testing.T) {
	s, pc, _ := pcTestSetup(t, true)
	ctx := context.Background()
	files, err := pc.files(ctx, pcTestPod(), "tls", 1, pcTestSource, ptr.To[int32](0o440))
	if err != nil {
		t.Fatal(err)
	}
	pub := checkCredentials(t, files, 0o440)

	if s.count() != 1 {
		t.Fatalf("created %d requests, want 1", s.count())
	}
	pcr := s.last()
	spec := pcr.Spec
	if pcr.GenerateName != "web-" || pcr.Namespace != "ns" {
		t.Errorf("request %s/%s (generateName %q)", pcr.Namespace, pcr.Name, pcr.GenerateName)
	}
	if len(pcr.OwnerReferences) != 1 || pcr.OwnerReferences[0].Kind != "Pod" || pcr.OwnerReferences[0].UID != "pod-uid" {
		t.Errorf("owner references %+v, want the pod", pcr.OwnerReferences)
	}
	if spec.SignerName != "example.com/signer" || spec.PodName != "web" || spec.PodUID != "pod-uid" ||
		spec.ServiceAccountName != "sa" || spec.ServiceAccountUID != "sa-uid" || spec.NodeName != "n1" || spec.NodeUID != "node-uid" {
		t.Errorf("spec %+v", spec)
	}
	if spec.MaxExpirationSeconds != nil {
		t.Errorf("maxExpirationSeconds %d, want nil for the API server to default", *spec.MaxExpirationSeconds)
	}
	if spec.UnverifiedUserAnnotations["spiffe/path-overriding"] != "/custom" {
		t.Errorf("user annotations %v", spec.UnverifiedUserAnnotations)
	}
	csr, err := x509.ParseCertificateRequest(spec.StubPKCS10Request)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("stub request invalid: %v", err)
	}
	if !csr.PublicKey.(*ecdsa.PublicKey).Equal(pub) {
		t.Error("stub request carries another key")
	}

	// A later sync serves the same credentials without asking again.
	again, err := pc.files(ctx, pcTestPod(), "tls", 1, pcTestSource, ptr.To[int32](0o440))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again["bundle.pem"].data, files["bundle.pem"].data) || s.count() != 1 {
		t.Fatalf("second sync: %d requests, same bundle %v", s.count(), bytes.Equal(again["bundle.pem"].data, files["bundle.pem"].data))
	}
	// Another source of the pod has its own credentials.
	other, err := pc.files(ctx, pcTestPod(), "tls", 2, &v1.PodCertificateProjection{SignerName: "example.com/signer",
		KeyType: "ED25519", MaxExpirationSeconds: ptr.To[int32](3600), KeyPath: "k"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.count() != 2 || bytes.Equal(other["k"].data, files["dir/key.pem"].data) || *s.last().Spec.MaxExpirationSeconds != 3600 {
		t.Fatalf("second source: %d requests, maxExpirationSeconds %v", s.count(), s.last().Spec.MaxExpirationSeconds)
	}
}

func TestPodCertificatePendingReusesRequest(t *testing.T) {
	s, pc, _ := pcTestSetup(t, false)
	ctx := context.Background()
	for range 3 {
		_, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil)
		if err == nil || !strings.Contains(err.Error(), `waiting for signer "example.com/signer"`) || !strings.Contains(err.Error(), "web-0") {
			t.Fatalf("got %v, want waiting for the signer to issue web-0", err)
		}
	}
	if s.count() != 1 {
		t.Fatalf("created %d requests over retries, want 1", s.count())
	}
	s.answer("web-0", false)
	files, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The key projected is the one of the request issued (checked against
	// the leaf), so the retries kept it.
	checkCredentials(t, files, 0o644)
	if s.count() != 1 {
		t.Fatalf("created %d requests, want 1", s.count())
	}

	// Forgetting the pod drops its state: a new pod incarnation asks anew.
	pc.forgetPod("pod-uid")
	if _, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil); err == nil || s.count() != 2 {
		t.Fatalf("after forgetPod: err %v, %d requests, want a new pending request", err, s.count())
	}
}

func TestPodCertificateWaitsForSigner(t *testing.T) {
	s, pc, clk := pcTestSetup(t, false)
	pc.pollTimeout, pc.pollInterval = 10*time.Second, 250*time.Millisecond
	var gets int
	var mu sync.Mutex
	s.client.PrependReactor("get", "podcertificaterequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		gets++
		n := gets
		mu.Unlock()
		if n == 3 {
			// Through the tracker: the clientset is locked while reactors run.
			gvr := certificatesv1.SchemeGroupVersion.WithResource("podcertificaterequests")
			obj, err := s.client.Tracker().Get(gvr, "ns", a.(k8stesting.GetAction).GetName())
			if err != nil {
				t.Error(err)
				return false, nil, nil
			}
			pcr := obj.(*certificatesv1.PodCertificateRequest).DeepCopy()
			s.sign(pcr)
			if err := s.client.Tracker().Update(gvr, pcr, "ns"); err != nil {
				t.Error(err)
			}
		}
		return false, nil, nil
	})
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if clk.HasWaiters() {
				clk.Step(250 * time.Millisecond)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	start := clk.Now()
	files, err := pc.files(context.Background(), pcTestPod(), "tls", 0, pcTestSource, nil)
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	checkCredentials(t, files, 0o644)
	if waited := clk.Since(start); waited < 500*time.Millisecond || waited >= 10*time.Second {
		t.Fatalf("waited %v on the clock, want two poll intervals", waited)
	}
}

func TestPodCertificateDenied(t *testing.T) {
	s, pc, _ := pcTestSetup(t, false)
	ctx := context.Background()
	if _, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil); err == nil {
		t.Fatal("pending request projected")
	}
	s.answer("web-0", true)
	_, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil)
	if err == nil || !strings.Contains(err.Error(), "Denied") || !strings.Contains(err.Error(), "NotAllowed") ||
		!strings.Contains(err.Error(), "pod may not have it") {
		t.Fatalf("got %v, want the denial's reason and message", err)
	}
	// The next attempt starts over with a new request.
	if _, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil); err == nil || s.count() != 2 {
		t.Fatalf("after denial: err %v, %d requests, want a second pending request", err, s.count())
	}
}

func TestPodCertificateRefresh(t *testing.T) {
	s, pc, clk := pcTestSetup(t, true)
	ctx := context.Background()
	first, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	firstKey := checkCredentials(t, first, 0o644)

	s.mu.Lock()
	s.auto = false
	s.mu.Unlock()
	clk.Step(29 * time.Minute)
	if _, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil); err != nil || s.count() != 1 {
		t.Fatalf("before beginRefreshAt: err %v, %d requests, want the cached credentials", err, s.count())
	}

	clk.Step(2 * time.Minute) // past beginRefreshAt
	for range 2 {
		got, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil)
		if err != nil {
			t.Fatalf("while the refresh is pending: %v", err)
		}
		if !bytes.Equal(got["bundle.pem"].data, first["bundle.pem"].data) {
			t.Fatal("old credentials replaced before the new certificate was issued")
		}
	}
	if s.count() != 2 {
		t.Fatalf("created %d requests, want one refresh request", s.count())
	}

	s.answer(s.last().Name, false)
	second, err := pc.files(ctx, pcTestPod(), "tls", 0, pcTestSource, nil)
	if err != nil {
		t.Fatal(err)
	}
	secondKey := checkCredentials(t, second, 0o644)
	if secondKey.(*ecdsa.PublicKey).Equal(firstKey) {
		t.Fatal("refresh reused the old key")
	}
}

func TestPodCertificateKeyTypes(t *testing.T) {
	for _, tt := range []struct {
		keyType string
		check   func(crypto.PublicKey) bool
	}{
		{"RSA3072", func(k crypto.PublicKey) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 3072 }},
		{"RSA4096", func(k crypto.PublicKey) bool { r, ok := k.(*rsa.PublicKey); return ok && r.N.BitLen() == 4096 }},
		{"ECDSAP256", func(k crypto.PublicKey) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve == elliptic.P256() }},
		{"ECDSAP384", func(k crypto.PublicKey) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve == elliptic.P384() }},
		{"ECDSAP521", func(k crypto.PublicKey) bool { e, ok := k.(*ecdsa.PublicKey); return ok && e.Curve == elliptic.P521() }},
		{"ED25519", func(k crypto.PublicKey) bool { _, ok := k.(ed25519.PublicKey); return ok }},
	} {
		t.Run(tt.keyType, func(t *testing.T) {
			s, pc, _ := pcTestSetup(t, true)
			src := *pcTestSource
			src.KeyType = tt.keyType
			files, err := pc.files(context.Background(), pcTestPod(), "tls", 0, &src, nil)
			if err != nil {
				t.Fatal(err)
			}
			pub := checkCredentials(t, files, 0o644)
			csr, err := x509.ParseCertificateRequest(s.last().Spec.StubPKCS10Request)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Fatalf("stub request signature: %v", err)
			}
			if !tt.check(csr.PublicKey) || !tt.check(pub) {
				t.Fatalf("key %T is not a %s key", csr.PublicKey, tt.keyType)
			}
		})
	}
	if _, err := generatePodCertKey("DSA", rand.Reader); err == nil {
		t.Fatal("unknown key type accepted")
	}
}

// TestPodCertificateVolume projects a podCertificate source through the
// pod's volume set-up onto disk.
func TestPodCertificateVolume(t *testing.T) {
	_, pc, _ := pcTestSetup(t, true)
	dir := t.TempDir()
	v := &podVolumes{podsDir: dir, podCertificates: pc.files}
	pod := pcTestPod()
	pod.Spec.Volumes = []v1.Volume{{Name: "tls", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o400),
		Sources:     []v1.VolumeProjection{{PodCertificate: pcTestSource}},
	}}}}
	paths, err := v.setupVolumes(context.Background(), pod)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]volumeFile{}
	for _, name := range []string{"bundle.pem", "dir/key.pem", "chain.pem"} {
		p := filepath.Join(paths["tls"], name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = volumeFile{data, st.Mode().Perm()}
	}
	checkCredentials(t, files, 0o400)

	// Without the manager the source is refused rather than left out.
	v.podCertificates = nil
	if _, err := v.setupVolumes(context.Background(), pod); err == nil {
		t.Fatal("podCertificate source projected without a manager")
	}
}

// TestPodCertificateRefreshAtHalfLife: without beginRefreshAt the
// certificate is refreshed at half of its lifetime.
func TestPodCertificateRefreshAtHalfLife(t *testing.T) {
	s, _, clk := pcTestSetup(t, false)
	key, err := generatePodCertKey("ECDSAP256", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	pcr := &certificatesv1.PodCertificateRequest{Spec: certificatesv1.PodCertificateRequestSpec{StubPKCS10Request: csr}}
	s.sign(pcr)
	pcr.Status.BeginRefreshAt = nil
	creds, err := issuedCredentials(pcr, &pendingCert{key: key})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(30 * time.Minute); !creds.refreshAt.Equal(want) {
		t.Fatalf("refresh at %v, want %v (half of one hour)", creds.refreshAt, want)
	}
	other, _ := generatePodCertKey("ECDSAP256", rand.Reader)
	if _, err := issuedCredentials(pcr, &pendingCert{key: other}); err == nil {
		t.Fatal("certificate for another key accepted")
	}
}
