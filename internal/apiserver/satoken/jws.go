package satoken

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// jwsHeader is the protected header of a compact JWS.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
}

var b64 = base64.RawURLEncoding

// sign returns the compact RS256 JWS of claims.
func sign(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	hdr, err := json.Marshal(jwsHeader{Alg: "RS256", Kid: kid})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal claims: %w", err)
	}
	input := b64.EncodeToString(hdr) + "." + b64.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// parsedJWS is a compact JWS split into its parts, not yet verified.
type parsedJWS struct {
	header  jwsHeader
	payload []byte
	input   string // header.payload, what the signature covers
	sig     []byte
}

// errNotJWS means the token is not a compact JWS at all.
var errNotJWS = errors.New("not a JWS")

func parseJWS(token string) (*parsedJWS, error) {
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errNotJWS
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(s, ".") {
		return nil, errNotJWS
	}
	var j parsedJWS
	hdr, err := b64.DecodeString(h)
	if err != nil || json.Unmarshal(hdr, &j.header) != nil {
		return nil, errNotJWS
	}
	if j.payload, err = b64.DecodeString(p); err != nil {
		return nil, errNotJWS
	}
	if j.sig, err = b64.DecodeString(s); err != nil {
		return nil, errNotJWS
	}
	j.input = token[:len(h)+1+len(p)]
	return &j, nil
}

// verify checks the RS256 signature against any of keys.
func (j *parsedJWS) verify(keys []*rsa.PublicKey) error {
	if j.header.Alg != "RS256" {
		return fmt.Errorf("unsupported signing algorithm %q", j.header.Alg)
	}
	sum := sha256.Sum256([]byte(j.input))
	for _, k := range keys {
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], j.sig) == nil {
			return nil
		}
	}
	return errors.New("invalid signature")
}
