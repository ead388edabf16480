package storage

import "strings"

// watchScope is what a watcher watches, as API Priority and Fairness
// counts it: a namespace ("" for all, or a cluster-scoped resource) and
// one object's name, from a metadata.name field selector ("" for all).
type watchScope struct {
	namespace, name string
}

// scopeOf returns the scope of a watch of prefix in a cache of the
// resource prefix cachePrefix, selecting metadata.name=name when
// indexField says so.
func scopeOf(cachePrefix, prefix, indexField, indexValue string) watchScope {
	var s watchScope
	if rest, ok := strings.CutPrefix(prefix, cachePrefix); ok {
		s.namespace = strings.TrimSuffix(rest, "/")
	}
	if indexField == "metadata.name" {
		s.name = indexValue
	}
	return s
}

// InterestedWatchers counts the watchers a write of the object namespace/
// name will notify, as upstream's watch tracker counts them for the work
// estimate of a mutating request: watches of the whole resource, of its
// namespace, and of that one object. An empty name (a create) counts no
// single-object watch. Counting takes three map lookups, whatever the
// number of watchers.
func (c *Cache) InterestedWatchers(namespace, name string) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := c.index.scopes[watchScope{}]
	if namespace != "" {
		n += c.index.scopes[watchScope{namespace: namespace}]
	}
	if name != "" {
		n += c.index.scopes[watchScope{namespace: namespace, name: name}]
	}
	return n
}
