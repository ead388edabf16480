// Package encryption encrypts stored API objects at rest as upstream's API
// server does: it reads an EncryptionConfiguration file
// (apiserver.config.k8s.io/v1) and produces, per resource, a Transformer
// that writes values in upstream's storage format
// ("k8s:enc:<provider>:v1:<key name>:" followed by the sealed data) and
// reads every format the configured providers know.
package encryption

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// The file's schema, mirroring upstream's EncryptionConfiguration.
type fileConfig struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Resources  []resourceConfig `json:"resources"`
}

type resourceConfig struct {
	Resources []string         `json:"resources"`
	Providers []providerConfig `json:"providers"`
}

type providerConfig struct {
	AESGCM    *keysConfig `json:"aesgcm,omitempty"`
	AESCBC    *keysConfig `json:"aescbc,omitempty"`
	Secretbox *keysConfig `json:"secretbox,omitempty"`
	Identity  *struct{}   `json:"identity,omitempty"`
	KMS       *struct{}   `json:"kms,omitempty"`
}

type keysConfig struct {
	Keys []keyConfig `json:"keys"`
}

type keyConfig struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

const (
	apiVersion = "apiserver.config.k8s.io/v1"
	kind       = "EncryptionConfiguration"
)

// Config is a loaded EncryptionConfiguration.
type Config struct {
	rules []rule
	// byResource memoises ForResource: group+"/"+resource → Transformer.
	byResource sync.Map
}

// rule is one resources[] entry: patterns and the chain they use.
type rule struct {
	patterns []string
	chain    *chain
}

// Load reads and validates the EncryptionConfiguration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption provider config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("encryption provider config %s: %w", path, err)
	}
	return c, nil
}

// Parse validates an EncryptionConfiguration in YAML or JSON.
func Parse(data []byte) (*Config, error) {
	var fc fileConfig
	if err := yaml.UnmarshalStrict(data, &fc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if fc.APIVersion != apiVersion || fc.Kind != kind {
		return nil, fmt.Errorf("want apiVersion %s and kind %s, got %q and %q", apiVersion, kind, fc.APIVersion, fc.Kind)
	}
	if len(fc.Resources) == 0 {
		return nil, errors.New("resources: at least one entry is required")
	}
	c := &Config{}
	for i, rc := range fc.Resources {
		path := fmt.Sprintf("resources[%d]", i)
		if len(rc.Resources) == 0 {
			return nil, fmt.Errorf("%s.resources: at least one resource is required", path)
		}
		for j, p := range rc.Resources {
			if err := validPattern(p); err != nil {
				return nil, fmt.Errorf("%s.resources[%d]: %w", path, j, err)
			}
		}
		ch, err := newChain(rc.Providers, path+".providers")
		if err != nil {
			return nil, err
		}
		c.rules = append(c.rules, rule{patterns: rc.Resources, chain: ch})
	}
	return c, nil
}

// validPattern accepts what upstream accepts: "resource" (core group),
// "resource.group", "*.group", "*." (every core resource) and "*.*".
func validPattern(p string) error {
	switch {
	case p == "":
		return errors.New("empty resource name")
	case p == "*":
		return errors.New(`"*" is not a valid resource; use "*.*" for every resource or "*." for the core group`)
	case p != strings.ToLower(p):
		return fmt.Errorf("resource %q must be lower case", p)
	case strings.HasPrefix(p, "*") && !strings.HasPrefix(p, "*."):
		return fmt.Errorf("resource %q: a wildcard must be written *.<group>", p)
	case strings.Contains(p[1:], "*") && p != "*.*":
		return fmt.Errorf("resource %q: only *.<group>, *. and *.* may use a wildcard", p)
	}
	return nil
}

// matches reports whether pattern p covers group/resource.
func matches(p, group, resource string) bool {
	if p == "*.*" {
		return true
	}
	if g, ok := strings.CutPrefix(p, "*."); ok {
		return g == group
	}
	r, g, _ := strings.Cut(p, ".")
	return r == resource && g == group
}

// ForResource returns the Transformer for a resource (group "" is the
// core group): the first resources[] entry naming it wins. nil means the
// resource is stored as is.
func (c *Config) ForResource(group, resource string) Transformer {
	if c == nil {
		return nil
	}
	id := group + "/" + resource
	if t, ok := c.byResource.Load(id); ok {
		return t.(lookup).t
	}
	var t Transformer
	for _, r := range c.rules {
		if r.covers(group, resource) {
			t = r.chain
			break
		}
	}
	c.byResource.Store(id, lookup{t})
	return t
}

// lookup lets byResource hold a nil Transformer.
type lookup struct{ t Transformer }

func (r rule) covers(group, resource string) bool {
	for _, p := range r.patterns {
		if matches(p, group, resource) {
			return true
		}
	}
	return false
}

// decodeKeys checks a provider's keys: present, uniquely named, base64 of
// an allowed length.
func decodeKeys(kc *keysConfig, path string, sizes ...int) ([]string, [][]byte, error) {
	if len(kc.Keys) == 0 {
		return nil, nil, fmt.Errorf("%s.keys: at least one key is required", path)
	}
	names := make([]string, len(kc.Keys))
	secrets := make([][]byte, len(kc.Keys))
	seen := map[string]bool{}
	for i, k := range kc.Keys {
		kp := fmt.Sprintf("%s.keys[%d]", path, i)
		switch {
		case k.Name == "":
			return nil, nil, fmt.Errorf("%s.name: required", kp)
		case strings.Contains(k.Name, ":"):
			return nil, nil, fmt.Errorf("%s.name: %q must not contain ':'", kp, k.Name)
		case seen[k.Name]:
			return nil, nil, fmt.Errorf("%s.name: %q is used twice", kp, k.Name)
		case k.Secret == "":
			return nil, nil, fmt.Errorf("%s.secret: required", kp)
		}
		seen[k.Name] = true
		b, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.secret: not valid base64: %w", kp, err)
		}
		ok := false
		for _, n := range sizes {
			ok = ok || len(b) == n
		}
		if !ok {
			return nil, nil, fmt.Errorf("%s.secret: key %q is %d bytes, want %s bytes", kp, k.Name, len(b), sizeList(sizes))
		}
		names[i], secrets[i] = k.Name, b
	}
	return names, secrets, nil
}

func sizeList(sizes []int) string {
	s := make([]string, len(sizes))
	for i, n := range sizes {
		s[i] = fmt.Sprint(n)
	}
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
