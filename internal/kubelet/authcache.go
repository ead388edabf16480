package kubelet

import (
	"container/list"
	"sync"
	"time"
)

// expiringLRU is a bounded map whose entries expire: the least recently
// used entry goes first when it is full.
type expiringLRU[V any] struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	order *list.List // front = most recently used; values are *lruEntry[V]
	items map[string]*list.Element
}

type lruEntry[V any] struct {
	key     string
	value   V
	expires time.Time
}

func newExpiringLRU[V any](max int) *expiringLRU[V] {
	return &expiringLRU[V]{max: max, now: time.Now, order: list.New(), items: map[string]*list.Element{}}
}

// get returns the live value for key.
func (c *expiringLRU[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[V])
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.value, true
}

// add stores value for ttl, evicting the least recently used entry when
// the cache is full.
func (c *expiringLRU[V]) add(key string, value V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp := c.now().Add(ttl)
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry[V])
		e.value, e.expires = value, exp
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&lruEntry[V]{key: key, value: value, expires: exp})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruEntry[V]).key)
	}
}

func (c *expiringLRU[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
