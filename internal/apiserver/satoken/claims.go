package satoken

import (
	"encoding/json"
	"fmt"
)

// LegacyIssuer is the issuer of tokens kept in Secrets of type
// kubernetes.io/service-account-token.
const LegacyIssuer = "kubernetes/serviceaccount"

// Ref names a Kubernetes object a token is bound to.
type Ref struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// PrivateClaims is the "kubernetes.io" claim of bound tokens.
type PrivateClaims struct {
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount *Ref   `json:"serviceaccount,omitempty"`
	Pod            *Ref   `json:"pod,omitempty"`
	Secret         *Ref   `json:"secret,omitempty"`
	Node           *Ref   `json:"node,omitempty"`
	// WarnAfter is when a token whose lifetime was extended for old
	// clients should have been refreshed.
	WarnAfter *int64 `json:"warnafter,omitempty"`
}

// claims is the payload of both token forms; the legacy fields are only
// set in legacy tokens, the registered ones only in bound tokens.
type claims struct {
	Issuer     string         `json:"iss"`
	Subject    string         `json:"sub"`
	Audience   audience       `json:"aud,omitempty"`
	Expiry     int64          `json:"exp,omitempty"`
	IssuedAt   int64          `json:"iat,omitempty"`
	NotBefore  int64          `json:"nbf,omitempty"`
	ID         string         `json:"jti,omitempty"`
	Kubernetes *PrivateClaims `json:"kubernetes.io,omitempty"`

	LegacyNamespace string `json:"kubernetes.io/serviceaccount/namespace,omitempty"`
	LegacySecret    string `json:"kubernetes.io/serviceaccount/secret.name,omitempty"`
	LegacySAName    string `json:"kubernetes.io/serviceaccount/service-account.name,omitempty"`
	LegacySAUID     string `json:"kubernetes.io/serviceaccount/service-account.uid,omitempty"`
}

// audience is the "aud" claim, a string or an array of strings in JSON.
type audience []string

func (a *audience) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return fmt.Errorf("aud: %w", err)
	}
	*a = many
	return nil
}

// Subject is the username of a ServiceAccount.
func Subject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}
