package policy

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// compileCache holds each policy compiled once per resourceVersion.
type compileCache[T any] struct {
	mu      sync.Mutex
	entries map[types.UID]cacheEntry[T]
}

type cacheEntry[T any] struct {
	resourceVersion string
	value           T
}

// get returns the policy compiled at resourceVersion, compiling it the first
// time. Compilation happens under the lock, so concurrent requests compile
// a policy only once.
func (c *compileCache[T]) get(uid types.UID, resourceVersion string, compile func() T) T {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[uid]; ok && e.resourceVersion == resourceVersion {
		return e.value
	}
	if c.entries == nil {
		c.entries = map[types.UID]cacheEntry[T]{}
	}
	v := compile()
	c.entries[uid] = cacheEntry[T]{resourceVersion: resourceVersion, value: v}
	return v
}

// retain forgets the policies not in live, once the cache holds more
// entries than there are policies.
func (c *compileCache[T]) retain(live map[types.UID]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) <= len(live) {
		return
	}
	for uid := range c.entries {
		if !live[uid] {
			delete(c.entries, uid)
		}
	}
}
