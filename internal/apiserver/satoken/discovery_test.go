package satoken

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"testing"
)

func TestDiscoveryDocuments(t *testing.T) {
	key, _ := keys(t)
	d, err := NewDiscovery(testIssuer, "", []*rsa.PublicKey{&key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	d.ConfigHandler().ServeHTTP(rec, httptest.NewRequest("GET", OpenIDConfigPath, nil))
	var cfg map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                testIssuer,
		"jwks_uri":                              testIssuer + "/openid/v1/jwks",
		"response_types_supported":              []any{"id_token"},
		"subject_types_supported":               []any{"public"},
		"id_token_signing_alg_values_supported": []any{"RS256"},
	}
	got, _ := json.Marshal(cfg)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Fatalf("openid-configuration\n got %s\nwant %s", got, exp)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}

	rec = httptest.NewRecorder()
	d.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("GET", JWKSPath, nil))
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %s: %v", rec.Body, err)
	}
	k := set.Keys[0]
	kid, _ := KeyID(&key.PublicKey)
	if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" || k["kid"] != kid {
		t.Fatalf("jwk %v", k)
	}
	n, _ := base64.RawURLEncoding.DecodeString(k["n"])
	e, _ := base64.RawURLEncoding.DecodeString(k["e"])
	if new(big.Int).SetBytes(n).Cmp(key.N) != 0 || int(new(big.Int).SetBytes(e).Int64()) != key.E {
		t.Fatal("jwk does not carry the public key")
	}
	if k["e"] != "AQAB" {
		t.Fatalf("e = %q", k["e"])
	}

	rec = httptest.NewRecorder()
	d.JWKSHandler().ServeHTTP(rec, httptest.NewRequest("POST", JWKSPath, nil))
	if rec.Code != 405 {
		t.Fatalf("POST: %d", rec.Code)
	}
}
