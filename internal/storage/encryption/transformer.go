package encryption

import (
	"bytes"
	"errors"
	"fmt"
)

// Transformer turns a stored value into what etcd holds and back. key is
// the etcd key, which authenticated providers bind the value to, so a
// value copied under another key does not decrypt.
type Transformer interface {
	TransformToStorage(key string, data []byte) ([]byte, error)
	// TransformFromStorage also reports whether the value was written
	// with something other than the current write provider and key, and
	// so should be rewritten (key rotation).
	TransformFromStorage(key string, data []byte) (out []byte, stale bool, err error)
}

// encPrefix starts every encrypted value, whatever the provider.
const encPrefix = "k8s:enc:"

// sealer is one key of one encrypting provider.
type sealer struct {
	provider string // "aescbc", "aesgcm", "secretbox"
	name     string // key name
	prefix   []byte // k8s:enc:<provider>:v1:<name>:
	seal     func(key string, plain []byte) ([]byte, error)
	open     func(key string, sealed []byte) ([]byte, error)
}

// chain is the ordered providers of one resources[] entry. The first
// provider (and its first key) writes; reads pick the key by prefix.
type chain struct {
	write    *sealer   // nil when identity comes first
	keys     []*sealer // every configured key, in file order
	identity bool      // an identity provider is configured
}

func newChain(pcs []providerConfig, path string) (*chain, error) {
	if len(pcs) == 0 {
		return nil, fmt.Errorf("%s: at least one provider is required (identity: {} stores values unencrypted)", path)
	}
	c := &chain{}
	for i, pc := range pcs {
		pp := fmt.Sprintf("%s[%d]", path, i)
		n := 0
		for _, set := range []bool{pc.AESGCM != nil, pc.AESCBC != nil, pc.Secretbox != nil, pc.Identity != nil, pc.KMS != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("%s: exactly one of aescbc, aesgcm, secretbox or identity must be set, found %d", pp, n)
		}
		var (
			ss  []*sealer
			err error
		)
		switch {
		case pc.KMS != nil:
			return nil, fmt.Errorf("%s: the kms provider is not supported; use aescbc, aesgcm, secretbox or identity", pp)
		case pc.Identity != nil:
			c.identity = true
		case pc.AESCBC != nil:
			ss, err = aescbcSealers(pc.AESCBC, pp+".aescbc")
		case pc.AESGCM != nil:
			ss, err = aesgcmSealers(pc.AESGCM, pp+".aesgcm")
		case pc.Secretbox != nil:
			ss, err = secretboxSealers(pc.Secretbox, pp+".secretbox")
		}
		if err != nil {
			return nil, err
		}
		if i == 0 && len(ss) > 0 {
			c.write = ss[0]
		}
		c.keys = append(c.keys, ss...)
	}
	return c, nil
}

func prefixFor(provider, name string) []byte {
	return []byte(encPrefix + provider + ":v1:" + name + ":")
}

// TransformToStorage encrypts with the first provider's first key.
func (c *chain) TransformToStorage(key string, data []byte) ([]byte, error) {
	if c.write == nil {
		return data, nil
	}
	sealed, err := c.write.seal(key, data)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s with %s key %q: %w", key, c.write.provider, c.write.name, err)
	}
	out := make([]byte, 0, len(c.write.prefix)+len(sealed))
	return append(append(out, c.write.prefix...), sealed...), nil
}

// TransformFromStorage decrypts with the key the value's prefix names;
// an unprefixed value is read as is if identity is configured.
func (c *chain) TransformFromStorage(key string, data []byte) ([]byte, bool, error) {
	for _, s := range c.keys {
		if !bytes.HasPrefix(data, s.prefix) {
			continue
		}
		plain, err := s.open(key, data[len(s.prefix):])
		if err != nil {
			return nil, false, fmt.Errorf("decrypt %s with %s key %q (wrong key?): %w", key, s.provider, s.name, err)
		}
		return plain, s != c.write, nil
	}
	if bytes.HasPrefix(data, []byte(encPrefix)) {
		return nil, false, fmt.Errorf("%s is stored encrypted as %q, which no key in the encryption configuration matches", key, describePrefix(data))
	}
	if !c.identity {
		return nil, false, fmt.Errorf("%s is stored unencrypted and the encryption configuration has no identity provider to read it", key)
	}
	return data, c.write != nil, nil
}

// describePrefix returns "k8s:enc:<provider>:v1:<name>" of a value, for
// errors, without any of the sealed data.
func describePrefix(data []byte) string {
	// k8s:enc:<provider>:v1:<name>: has five colons.
	n := 0
	for i, b := range data {
		if b == ':' {
			if n++; n == 5 {
				return string(data[:i])
			}
		}
		if i > 256 {
			break
		}
	}
	return encPrefix + "?"
}

var errShort = errors.New("stored value is too short")
