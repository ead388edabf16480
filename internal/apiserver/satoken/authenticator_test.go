package satoken

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const testIssuer = "https://kubernetes.default.svc"

var (
	keyOnce          sync.Once
	testKey, otherKy *rsa.PrivateKey
)

func keys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		testKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		otherKy, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
	return testKey, otherKy
}

// fakeGetter is an in-memory Getter.
type fakeGetter struct {
	sas     map[string]*corev1.ServiceAccount
	pods    map[string]*corev1.Pod
	secrets map[string]*corev1.Secret
	nodes   map[string]*corev1.Node
}

func (f *fakeGetter) GetServiceAccount(ns, name string) (*corev1.ServiceAccount, bool) {
	o, ok := f.sas[ns+"/"+name]
	return o, ok
}
func (f *fakeGetter) GetPod(ns, name string) (*corev1.Pod, bool) {
	o, ok := f.pods[ns+"/"+name]
	return o, ok
}
func (f *fakeGetter) GetSecret(ns, name string) (*corev1.Secret, bool) {
	o, ok := f.secrets[ns+"/"+name]
	return o, ok
}
func (f *fakeGetter) GetNode(name string) (*corev1.Node, bool) {
	o, ok := f.nodes[name]
	return o, ok
}

func meta(ns, name, uid string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}
}

func newFixture(t *testing.T) (*Issuer, *Authenticator, *fakeGetter) {
	t.Helper()
	key, _ := keys(t)
	iss, err := NewIssuer(testIssuer, key)
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGetter{
		sas:     map[string]*corev1.ServiceAccount{"ns/sa": {ObjectMeta: meta("ns", "sa", "sa-uid")}},
		pods:    map[string]*corev1.Pod{"ns/p": {ObjectMeta: meta("ns", "p", "pod-uid")}},
		secrets: map[string]*corev1.Secret{"ns/s": {ObjectMeta: meta("ns", "s", "secret-uid")}},
		nodes:   map[string]*corev1.Node{"n1": {ObjectMeta: meta("", "n1", "node-uid")}},
	}
	return iss, NewAuthenticator(testIssuer, []*rsa.PublicKey{&key.PublicKey}, nil, g), g
}

func podRequest() Request {
	return Request{
		Namespace: "ns", ServiceAccount: Ref{Name: "sa", UID: "sa-uid"},
		Audiences: []string{testIssuer}, Lifetime: time.Hour,
		Pod: &Ref{Name: "p", UID: "pod-uid"}, Node: &Ref{Name: "n1", UID: "node-uid"},
	}
}

func TestIssueAndAuthenticatePodBoundToken(t *testing.T) {
	iss, a, _ := newFixture(t)
	tok, exp, err := iss.Issue(podRequest())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expiry %v", exp)
	}
	r := httptest.NewRequest("GET", "/api", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	u, ok, err := a.Authenticate(r)
	if err != nil || !ok {
		t.Fatalf("authenticate: %v %v", ok, err)
	}
	if u.Name != "system:serviceaccount:ns:sa" || u.UID != "sa-uid" {
		t.Fatalf("user %+v", u)
	}
	wantGroups := []string{"system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"}
	if strings.Join(u.Groups, ",") != strings.Join(wantGroups, ",") {
		t.Fatalf("groups %v", u.Groups)
	}
	for k, v := range map[string]string{ExtraPodName: "p", ExtraPodUID: "pod-uid", ExtraNodeName: "n1", ExtraNodeUID: "node-uid"} {
		if got := u.Extra[k]; len(got) != 1 || got[0] != v {
			t.Errorf("extra %s = %v, want %s", k, got, v)
		}
	}
	if id := u.Extra[ExtraCredentialID]; len(id) != 1 || !strings.HasPrefix(id[0], "JTI=") {
		t.Errorf("credential id %v", id)
	}

	// The header and claims look like upstream's.
	parts := strings.Split(tok, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	kid, _ := KeyID(iss.PublicKey())
	var h map[string]string
	if err := json.Unmarshal(hdr, &h); err != nil || h["alg"] != "RS256" || h["kid"] != kid {
		t.Fatalf("header %s", hdr)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "kubernetes.io"} {
		if _, ok := c[k]; !ok {
			t.Errorf("claim %s missing in %s", k, payload)
		}
	}
	if _, ok := c["aud"].([]any); !ok {
		t.Errorf("aud is not an array: %s", payload)
	}
}

func TestRejectedTokens(t *testing.T) {
	iss, _, _ := newFixture(t)
	var g *fakeGetter // each case's objects, set before prepare runs
	_, other := keys(t)
	foreign, _ := NewIssuer(testIssuer, other)
	otherIssuer, _ := NewIssuer("https://elsewhere", testKey)

	cases := []struct {
		name    string
		token   func() string
		prepare func()
		wantErr bool // false: not ours (ok=false, no error)
	}{
		{"not a JWT", func() string { return "abcdef.0123456789abcdef" }, nil, false},
		{"garbage with dots", func() string { return "a.b.c" }, nil, false},
		{"other issuer", func() string { tok, _, _ := otherIssuer.Issue(podRequest()); return tok }, nil, false},
		{"wrong key", func() string { tok, _, _ := foreign.Issue(podRequest()); return tok }, nil, true},
		{"tampered", func() string {
			tok, _, _ := iss.Issue(podRequest())
			other, _, _ := iss.Issue(Request{Namespace: "ns", ServiceAccount: Ref{Name: "sa", UID: "sa-uid"}, Audiences: []string{testIssuer}, Lifetime: 2 * time.Hour})
			p := strings.Split(tok, ".")
			return p[0] + "." + strings.Split(other, ".")[1] + "." + p[2]
		}, nil, true},
		{"expired", func() string {
			iss.now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
			defer func() { iss.now = time.Now }()
			tok, _, _ := iss.Issue(podRequest())
			return tok
		}, nil, true},
		{"not yet valid", func() string {
			iss.now = func() time.Time { return time.Now().Add(time.Hour) }
			defer func() { iss.now = time.Now }()
			tok, _, _ := iss.Issue(podRequest())
			return tok
		}, nil, true},
		{"wrong audience", func() string {
			r := podRequest()
			r.Audiences = []string{"vault"}
			tok, _, _ := iss.Issue(r)
			return tok
		}, nil, true},
		{"deleted pod", func() string { tok, _, _ := iss.Issue(podRequest()); return tok },
			func() { delete(g.pods, "ns/p") }, true},
		{"recreated pod", func() string { tok, _, _ := iss.Issue(podRequest()); return tok },
			func() { g.pods["ns/p"] = &corev1.Pod{ObjectMeta: meta("ns", "p", "new-uid")} }, true},
		{"pod past its grace period", func() string { tok, _, _ := iss.Issue(podRequest()); return tok },
			func() {
				p := &corev1.Pod{ObjectMeta: meta("ns", "p", "pod-uid")}
				p.DeletionTimestamp = &metav1.Time{Time: time.Now().Add(-time.Second)}
				g.pods["ns/p"] = p
			}, true},
		{"recreated service account", func() string { tok, _, _ := iss.Issue(podRequest()); return tok },
			func() { g.sas["ns/sa"] = &corev1.ServiceAccount{ObjectMeta: meta("ns", "sa", "other")} }, true},
		{"deleted secret", func() string {
			tok, _, _ := iss.Issue(Request{Namespace: "ns", ServiceAccount: Ref{Name: "sa", UID: "sa-uid"}, Audiences: []string{testIssuer}, Lifetime: time.Hour, Secret: &Ref{Name: "s", UID: "secret-uid"}})
			return tok
		}, func() { delete(g.secrets, "ns/s") }, true},
		{"deleted node", func() string {
			tok, _, _ := iss.Issue(Request{Namespace: "ns", ServiceAccount: Ref{Name: "sa", UID: "sa-uid"}, Audiences: []string{testIssuer}, Lifetime: time.Hour, Node: &Ref{Name: "n1", UID: "node-uid"}})
			return tok
		}, func() { delete(g.nodes, "n1") }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a *Authenticator
			_, a, g = newFixture(t)
			tok := tc.token()
			if tc.prepare != nil {
				tc.prepare()
			}
			u, ok, err := a.AuthenticateToken(tok)
			if ok || u != nil {
				t.Fatalf("accepted as %+v", u)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestCustomAudiences(t *testing.T) {
	iss, _, g := newFixture(t)
	a := NewAuthenticator(testIssuer, []*rsa.PublicKey{iss.PublicKey()}, []string{"api", "other"}, g)
	r := podRequest()
	r.Audiences = []string{"x", "other"}
	tok, _, _ := iss.Issue(r)
	if _, ok, err := a.AuthenticateToken(tok); !ok || err != nil {
		t.Fatalf("token with one matching audience refused: %v", err)
	}
}

func TestLegacySecretToken(t *testing.T) {
	iss, a, g := newFixture(t)
	tok, err := iss.IssueLegacy("ns", Ref{Name: "sa", UID: "sa-uid"}, "sa-token")
	if err != nil {
		t.Fatal(err)
	}
	g.secrets["ns/sa-token"] = &corev1.Secret{ObjectMeta: meta("ns", "sa-token", "x"), Type: corev1.SecretTypeServiceAccountToken,
		Data: map[string][]byte{corev1.ServiceAccountTokenKey: []byte(tok)}}
	u, ok, err := a.AuthenticateToken(tok)
	if err != nil || !ok || u.Name != "system:serviceaccount:ns:sa" {
		t.Fatalf("legacy token: %+v %v %v", u, ok, err)
	}
	g.secrets["ns/sa-token"].Data[corev1.ServiceAccountTokenKey] = []byte("rotated")
	if _, ok, err := a.AuthenticateToken(tok); ok || err == nil {
		t.Fatal("legacy token accepted after the secret changed")
	}
	delete(g.secrets, "ns/sa-token")
	if _, ok, err := a.AuthenticateToken(tok); ok || err == nil {
		t.Fatal("legacy token accepted after its secret was deleted")
	}
}

func TestAuthenticateTokenForAudiences(t *testing.T) {
	iss, a, g := newFixture(t)
	r := podRequest()
	r.Audiences = []string{"vault", "other"}
	tok, _, _ := iss.Issue(r)
	u, matched, ok, err := a.AuthenticateTokenFor(tok, []string{"nope", "vault"})
	if err != nil || !ok || u.Name != Subject("ns", "sa") || len(matched) != 1 || matched[0] != "vault" {
		t.Fatalf("review for vault: %+v %v %v %v", u, matched, ok, err)
	}
	if _, _, ok, err := a.AuthenticateTokenFor(tok, []string{testIssuer}); ok || err == nil {
		t.Fatal("vault token accepted for the API")
	}
	legacy, _ := iss.IssueLegacy("ns", Ref{Name: "sa", UID: "sa-uid"}, "t")
	g.secrets["ns/t"] = &corev1.Secret{ObjectMeta: meta("ns", "t", "x"), Data: map[string][]byte{"token": []byte(legacy)}}
	if _, _, ok, err := a.AuthenticateTokenFor(legacy, []string{"vault"}); ok || err == nil {
		t.Fatal("legacy token accepted for another audience")
	}
	if _, m, ok, err := a.AuthenticateTokenFor(legacy, []string{testIssuer}); !ok || err != nil || m[0] != testIssuer {
		t.Fatalf("legacy token for the API: %v %v", ok, err)
	}
}

func TestCachedTokenStillChecksLiveness(t *testing.T) {
	iss, a, g := newFixture(t)
	tok, _, _ := iss.Issue(podRequest())
	for range 2 {
		if _, ok, err := a.AuthenticateToken(tok); !ok || err != nil {
			t.Fatalf("valid token: %v", err)
		}
	}
	delete(g.pods, "ns/p")
	if _, ok, err := a.AuthenticateToken(tok); ok || err == nil {
		t.Fatal("cached token accepted after its pod was deleted")
	}
	a.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	g.pods["ns/p"] = &corev1.Pod{ObjectMeta: meta("ns", "p", "pod-uid")}
	if _, ok, err := a.AuthenticateToken(tok); ok || err == nil {
		t.Fatal("cached token accepted after it expired")
	}
}
