package satoken

import (
	"crypto/sha256"
	"sync"
)

// maxVerified bounds the verified-token cache; when full it starts over,
// which costs one signature check per live token.
const maxVerified = 4096

// verifiedCache remembers the claims of tokens whose signature checked
// out, so a client presenting its token on every request costs one RSA
// verification, not one per request. Expiry, audiences and the bound
// objects are still checked every time. Cached claims are shared and must
// not be modified.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*claims
}

func (v *verifiedCache) get(token string) (*claims, bool) {
	k := sha256.Sum256([]byte(token))
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.m[k]
	return c, ok
}

func (v *verifiedCache) add(token string, c *claims) {
	k := sha256.Sum256([]byte(token))
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerified {
		v.m = make(map[[sha256.Size]byte]*claims)
	}
	v.m[k] = c
}
