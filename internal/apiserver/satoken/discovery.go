package satoken

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
)

// Paths of the OIDC discovery documents.
const (
	OpenIDConfigPath = "/.well-known/openid-configuration"
	JWKSPath         = "/openid/v1/jwks"
)

type openIDConfig struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
	SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
}

type jwk struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// Discovery serves the OIDC discovery documents that let other systems
// verify ServiceAccount tokens.
type Discovery struct {
	config, jwks []byte
}

// NewDiscovery describes issuer and its verification keys. The JWKS is
// announced at jwksURI, or at the issuer's JWKSPath when jwksURI is empty.
func NewDiscovery(issuer, jwksURI string, keys []*rsa.PublicKey) (*Discovery, error) {
	if jwksURI == "" {
		jwksURI = strings.TrimSuffix(issuer, "/") + JWKSPath
	}
	cfg, err := json.Marshal(openIDConfig{
		Issuer:        issuer,
		JWKSURI:       jwksURI,
		ResponseTypes: []string{"id_token"},
		SubjectTypes:  []string{"public"},
		SigningAlgs:   []string{"RS256"},
	})
	if err != nil {
		return nil, err
	}
	set := jwkSet{Keys: []jwk{}}
	for _, k := range keys {
		kid, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jwk{
			Kty: "RSA", Alg: "RS256", Use: "sig", Kid: kid,
			N: b64.EncodeToString(k.N.Bytes()),
			E: b64.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal JWKS: %w", err)
	}
	return &Discovery{config: cfg, jwks: jwks}, nil
}

// ConfigHandler serves OpenIDConfigPath.
func (d *Discovery) ConfigHandler() http.Handler {
	return documentHandler(d.config, "application/json")
}

// JWKSHandler serves JWKSPath.
func (d *Discovery) JWKSHandler() http.Handler {
	return documentHandler(d.jwks, "application/jwk-set+json")
}

func documentHandler(body []byte, contentType string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	})
}
