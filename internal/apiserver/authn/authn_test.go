package authn

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
)

func requestWithCert(t *testing.T, certPEM []byte) *http.Request {
	t.Helper()
	blk, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
	return r
}

func TestClientCert(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := NewClientCert(b.CAPool)
	u, ok, err := a.Authenticate(requestWithCert(t, b.AdminCertPEM))
	if err != nil || !ok || u.Name != "skiff-admin" || u.Groups[0] != "system:masters" || u.Groups[1] != "system:authenticated" {
		t.Fatalf("admin: %+v %v %v", u, ok, err)
	}
	other, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, _ := other.IssueClientCert("mallory", nil, time.Hour)
	if _, ok, err := a.Authenticate(requestWithCert(t, stranger)); ok || err == nil {
		t.Fatal("certificate from another CA accepted")
	}
	if _, ok, _ := a.Authenticate(httptest.NewRequest("GET", "/", nil)); ok {
		t.Fatal("request without TLS accepted")
	}
}

func TestBearerTokenAndUnion(t *testing.T) {
	tokens := NewBearerToken(func(tok string) (*User, bool) {
		if tok == "abc" {
			return &User{Name: "bob"}, true
		}
		return nil, false
	})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer abc")
	u, ok, err := Union(NewClientCert(x509.NewCertPool()), tokens).Authenticate(r)
	if err != nil || !ok || u.Name != "bob" {
		t.Fatalf("bearer: %+v %v %v", u, ok, err)
	}
	r.Header.Set("Authorization", "Bearer nope")
	if _, ok, _ := tokens.Authenticate(r); ok {
		t.Fatal("unknown token accepted")
	}
	r.Header.Set("Authorization", "Basic abc")
	if _, ok, _ := tokens.Authenticate(r); ok {
		t.Fatal("basic auth taken as a token")
	}
	ctx := WithUser(r.Context(), &User{Name: "x"})
	if got, ok := UserFrom(ctx); !ok || got.Name != "x" {
		t.Fatal("user not carried in context")
	}
}

// A remembered verification never outlives the certificate, and a
// certificate that failed is not remembered.
func TestClientCertVerificationExpires(t *testing.T) {
	b, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := NewClientCert(b.CAPool)
	now := time.Now()
	a.now = func() time.Time { return now }
	short, _, err := b.IssueClientCert("brief", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Authenticate(requestWithCert(t, short)); !ok || err != nil {
		t.Fatalf("fresh certificate: %v %v", ok, err)
	}
	now = now.Add(2 * time.Minute)
	if _, ok, err := a.Authenticate(requestWithCert(t, short)); !ok || err != nil {
		t.Fatalf("remembered certificate: %v %v", ok, err)
	}
	now = now.Add(2 * time.Hour)
	if _, ok, err := a.Authenticate(requestWithCert(t, short)); ok || err == nil {
		t.Fatal("expired certificate accepted from the remembered verification")
	}
	// Valid for less than a remembered verification lasts.
	now = time.Now()
	brief, _, err := b.IssueClientCert("briefer", nil, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Authenticate(requestWithCert(t, brief)); !ok || err != nil {
		t.Fatalf("fresh certificate: %v %v", ok, err)
	}
	now = now.Add(4 * time.Minute)
	if _, ok, _ := a.Authenticate(requestWithCert(t, brief)); ok {
		t.Fatal("certificate accepted after its expiry, within a remembered verification")
	}
	clear(a.verified)

	other, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, _ := other.IssueClientCert("mallory", nil, time.Hour)
	for range 2 {
		if _, ok, _ := a.Authenticate(requestWithCert(t, stranger)); ok {
			t.Fatal("certificate from another CA accepted")
		}
	}
	if len(a.verified) != 0 {
		t.Errorf("%d certificates remembered, want none: none verified since the last clear", len(a.verified))
	}
}
