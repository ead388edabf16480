package bootstrapsigner

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// jwsHeader is the protected header of a cluster-info signature. Its
// fields are in the order upstream's JOSE library writes them (sorted), so
// that signatures are byte-for-byte those kubeadm computes and checks.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// Sign returns the detached JWS of content, as kubeadm's bootstrap signer
// makes it: compact serialization "<header>..<signature>" (the payload
// left out), HS256 keyed with the token secret, the token ID as "kid".
func Sign(content, tokenID, tokenSecret string) (string, error) {
	h, err := json.Marshal(jwsHeader{Alg: "HS256", Kid: tokenID})
	if err != nil {
		return "", fmt.Errorf("jws header: %w", err)
	}
	header := base64.RawURLEncoding.EncodeToString(h)
	payload := base64.RawURLEncoding.EncodeToString([]byte(content))
	mac := hmac.New(sha256.New, []byte(tokenSecret))
	mac.Write([]byte(header + "." + payload))
	return header + ".." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Verify reports whether sig is the detached JWS of content made with the
// token; the comparison takes constant time.
func Verify(sig, content, tokenID, tokenSecret string) bool {
	want, err := Sign(content, tokenID, tokenSecret)
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(want))
}

// ParseToken splits a bootstrap token "<id>.<secret>" and checks its form.
func ParseToken(token string) (id, secret string, err error) {
	id, secret, _ = strings.Cut(strings.TrimSpace(token), ".")
	if !tokenIDRe.MatchString(id) || !tokenSecretRe.MatchString(secret) {
		return "", "", errors.New("the token must look like abcdef.0123456789abcdef (from `skiff token create`)")
	}
	return id, secret, nil
}
