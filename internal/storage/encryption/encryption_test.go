package encryption

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func key(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

func config(t *testing.T, providers string) *Config {
	t.Helper()
	c, err := Parse([]byte(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
` + providers))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTripEachProvider(t *testing.T) {
	const k = "/registry/secrets/ns/s"
	plain := []byte("k8s\x00 some protobuf")
	for _, tc := range []struct{ provider, secret, nonceLen string }{
		{"aescbc", key(32, 1), "16"},
		{"aescbc", key(16, 1), "16"},
		{"aesgcm", key(16, 2), "12"},
		{"aesgcm", key(32, 2), "12"},
		{"secretbox", key(32, 3), "24"},
	} {
		t.Run(tc.provider+tc.secret[:4], func(t *testing.T) {
			tr := config(t, fmt.Sprintf("  - %s:\n      keys: [{name: k1, secret: %s}]\n", tc.provider, tc.secret)).ForResource("", "secrets")
			stored, err := tr.TransformToStorage(k, plain)
			if err != nil {
				t.Fatal(err)
			}
			prefix := "k8s:enc:" + tc.provider + ":v1:k1:"
			if !bytes.HasPrefix(stored, []byte(prefix)) {
				t.Fatalf("stored %q, want prefix %q", stored[:min(len(stored), 40)], prefix)
			}
			if bytes.Contains(stored, plain) {
				t.Fatal("plaintext visible in stored value")
			}
			again, _ := tr.TransformToStorage(k, plain)
			if bytes.Equal(stored, again) {
				t.Error("two encryptions of the same value are equal; nonce or IV not random")
			}
			got, stale, err := tr.TransformFromStorage(k, stored)
			if err != nil || stale || !bytes.Equal(got, plain) {
				t.Fatalf("read back %q stale=%v err=%v", got, stale, err)
			}
		})
	}
}

func TestCBCLayout(t *testing.T) {
	// Decrypt by hand to pin the layout: prefix, IV(16), CBC, PKCS#7.
	tr := config(t, "  - aescbc:\n      keys: [{name: a, secret: "+key(32, 7)+"}]\n").ForResource("", "secrets")
	stored, err := tr.TransformToStorage("/k", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	body := stored[len("k8s:enc:aescbc:v1:a:"):]
	if len(body) != 16+32 { // IV + data + a whole block of padding
		t.Errorf("sealed length %d, want 48", len(body))
	}
}

func TestGCMBindsValueToKey(t *testing.T) {
	tr := config(t, "  - aesgcm:\n      keys: [{name: g, secret: "+key(32, 9)+"}]\n").ForResource("", "secrets")
	stored, err := tr.TransformToStorage("/registry/secrets/a/x", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.TransformFromStorage("/registry/secrets/b/x", stored); err == nil {
		t.Error("a value moved to another key decrypted")
	}
}

func TestRotationAndStale(t *testing.T) {
	const k = "/registry/secrets/ns/s"
	old := config(t, "  - aescbc:\n      keys:\n      - {name: key1, secret: "+key(32, 1)+"}\n      - {name: key2, secret: "+key(32, 2)+"}\n  - identity: {}\n").ForResource("", "secrets")
	rotated := config(t, "  - aescbc:\n      keys:\n      - {name: key2, secret: "+key(32, 2)+"}\n      - {name: key1, secret: "+key(32, 1)+"}\n  - identity: {}\n").ForResource("", "secrets")
	v1, _ := old.TransformToStorage(k, []byte("x"))
	got, stale, err := rotated.TransformFromStorage(k, v1)
	if err != nil || !stale || string(got) != "x" {
		t.Fatalf("old key after rotation: %q stale=%v err=%v", got, stale, err)
	}
	v2, _ := rotated.TransformToStorage(k, got)
	if !bytes.HasPrefix(v2, []byte("k8s:enc:aescbc:v1:key2:")) {
		t.Errorf("rewrite used %q", v2[:23])
	}
	// Unencrypted values are read through identity, and are stale.
	got, stale, err = rotated.TransformFromStorage(k, []byte("plain"))
	if err != nil || !stale || string(got) != "plain" {
		t.Errorf("plain value: %q stale=%v err=%v", got, stale, err)
	}
	// Identity first: writes stay plain, encrypted values still read.
	idFirst := config(t, "  - identity: {}\n  - aescbc:\n      keys: [{name: key1, secret: "+key(32, 1)+"}]\n").ForResource("", "secrets")
	if w, _ := idFirst.TransformToStorage(k, []byte("p")); string(w) != "p" {
		t.Errorf("identity first wrote %q", w)
	}
	if got, stale, err := idFirst.TransformFromStorage(k, v1); err != nil || !stale || string(got) != "x" {
		t.Errorf("identity first reading aescbc: %q stale=%v err=%v", got, stale, err)
	}
}

func TestReadErrors(t *testing.T) {
	const k = "/registry/secrets/ns/s"
	writer := config(t, "  - aescbc:\n      keys: [{name: key1, secret: "+key(32, 1)+"}]\n").ForResource("", "secrets")
	stored, _ := writer.TransformToStorage(k, []byte("secret value"))
	for name, tc := range map[string]struct {
		providers, value, want string
	}{
		"wrong key":         {"  - aescbc:\n      keys: [{name: key1, secret: " + key(32, 2) + "}]\n", string(stored), `aescbc key "key1"`},
		"missing key":       {"  - aescbc:\n      keys: [{name: other, secret: " + key(32, 1) + "}]\n  - identity: {}\n", string(stored), "k8s:enc:aescbc:v1:key1"},
		"no identity":       {"  - aescbc:\n      keys: [{name: key1, secret: " + key(32, 1) + "}]\n", "plain", "no identity provider"},
		"identity only":     {"  - identity: {}\n", string(stored), "no key"},
		"truncated":         {"  - aescbc:\n      keys: [{name: key1, secret: " + key(32, 1) + "}]\n", "k8s:enc:aescbc:v1:key1:abc", "too short"},
		"gcm wrong key":     {"  - aesgcm:\n      keys: [{name: key1, secret: " + key(32, 2) + "}]\n", "k8s:enc:aesgcm:v1:key1:" + strings.Repeat("x", 40), "aesgcm"},
		"secretbox garbage": {"  - secretbox:\n      keys: [{name: key1, secret: " + key(32, 2) + "}]\n", "k8s:enc:secretbox:v1:key1:" + strings.Repeat("x", 60), "authentication"},
	} {
		t.Run(name, func(t *testing.T) {
			tr := config(t, tc.providers).ForResource("", "secrets")
			_, _, err := tr.TransformFromStorage(k, []byte(tc.value))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret value") {
				t.Error("error leaks the plaintext")
			}
		})
	}
}

func TestForResource(t *testing.T) {
	c, err := Parse([]byte(`{"apiVersion":"apiserver.config.k8s.io/v1","kind":"EncryptionConfiguration","resources":[
	{"resources":["secrets","configmaps"],"providers":[{"aescbc":{"keys":[{"name":"a","secret":"` + key(32, 1) + `"}]}}]},
	{"resources":["*.apps"],"providers":[{"secretbox":{"keys":[{"name":"b","secret":"` + key(32, 2) + `"}]}}]},
	{"resources":["widgets.example.com"],"providers":[{"identity":{}}]},
	{"resources":["*."],"providers":[{"aesgcm":{"keys":[{"name":"c","secret":"` + key(16, 3) + `"}]}}]},
	{"resources":["*.*"],"providers":[{"aesgcm":{"keys":[{"name":"d","secret":"` + key(16, 4) + `"}]}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ group, resource, want string }{
		{"", "secrets", "aescbc:v1:a"},
		{"", "configmaps", "aescbc:v1:a"},
		{"apps", "deployments", "secretbox:v1:b"},
		{"example.com", "widgets", ""},
		{"", "pods", "aesgcm:v1:c"},
		{"batch", "jobs", "aesgcm:v1:d"},
	} {
		for range 2 { // the second lookup is memoised
			tr := c.ForResource(tc.group, tc.resource)
			if tc.want == "" {
				if w, _ := tr.TransformToStorage("/k", []byte("v")); string(w) != "v" {
					t.Errorf("%s.%s: identity wrote %q", tc.resource, tc.group, w)
				}
				continue
			}
			w, err := tr.TransformToStorage("/k", []byte("v"))
			if err != nil || !bytes.HasPrefix(w, []byte("k8s:enc:"+tc.want+":")) {
				t.Errorf("%s.%s: wrote %q (%v), want %s", tc.resource, tc.group, w[:min(len(w), 25)], err, tc.want)
			}
		}
	}
	only := config(t, "  - identity: {}\n")
	if only.ForResource("", "pods") != nil {
		t.Error("an unlisted resource should get no transformer")
	}
	var none *Config
	if none.ForResource("", "secrets") != nil {
		t.Error("a nil Config should encrypt nothing")
	}
}

func TestParseErrors(t *testing.T) {
	head := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
	for name, tc := range map[string]struct{ file, want string }{
		"wrong kind":      {"apiVersion: v1\nkind: EncryptionConfig\nresources: []\n", "want apiVersion"},
		"no resources":    {head + "resources: []\n", "at least one entry"},
		"empty providers": {head + "resources:\n- resources: [secrets]\n  providers: []\n", "at least one provider"},
		"unknown field":   {head + "resources:\n- resources: [secrets]\n  providers:\n  - rot13: {}\n", "rot13"},
		"two in one":      {head + "resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n    aescbc: {keys: [{name: a, secret: " + key(32, 1) + "}]}\n", "exactly one"},
		"kms":             {head + "resources:\n- resources: [secrets]\n  providers:\n  - kms: {}\n", "kms provider is not supported"},
		"short key":       {head + "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: a, secret: " + key(10, 1) + "}]}\n", "10 bytes, want 16, 24 or 32"},
		"secretbox 16":    {head + "resources:\n- resources: [secrets]\n  providers:\n  - secretbox: {keys: [{name: a, secret: " + key(16, 1) + "}]}\n", "want 32 bytes"},
		"bad base64":      {head + "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: [{name: a, secret: '!!'}]}\n", "base64"},
		"no keys":         {head + "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: []}\n", "at least one key"},
		"dup names":       {head + "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: [{name: a, secret: " + key(32, 1) + "}, {name: a, secret: " + key(32, 2) + "}]}\n", "used twice"},
		"colon in name":   {head + "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: [{name: 'a:b', secret: " + key(32, 1) + "}]}\n", "must not contain"},
		"bare star":       {head + "resources:\n- resources: ['*']\n  providers:\n  - identity: {}\n", `use "*.*"`},
		"upper case":      {head + "resources:\n- resources: [Secrets]\n  providers:\n  - identity: {}\n", "lower case"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	p := filepath.Join(t.TempDir(), "enc.yaml")
	body := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: [{name: a, secret: " + key(8, 1) + "}]}\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "resources[0].providers[0].aescbc.keys[0].secret") {
		t.Errorf("err = %v, want the path and the field", err)
	}
}
