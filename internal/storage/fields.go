package storage

import (
	"slices"

	"k8s.io/apimachinery/pkg/fields"
)

// Fields are an object's selectable fields (metadata.name, spec.nodeName,
// ...) as key/value pairs sorted by key, k0, v0, k1, v1. The cache keeps
// one per object: a slice of a pod's ten fields takes about half the
// memory of a map, and its strings are the object's own. It implements
// fields.Fields, so selectors match it directly.
type Fields []string

// NewFields returns set as Fields.
func NewFields(set fields.Set) Fields {
	if len(set) == 0 {
		return nil
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	f := make(Fields, 0, 2*len(keys))
	for _, k := range keys {
		f = append(f, k, set[k])
	}
	return f
}

// find is a binary search for key among the pairs.
func (f Fields) find(key string) (int, bool) {
	n := len(f) / 2
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if f[2*m] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && f[2*lo] == key
}

// Has reports whether key is one of the fields.
func (f Fields) Has(key string) bool {
	_, ok := f.find(key)
	return ok
}

// Get returns the value of key, "" if it is not one of the fields.
func (f Fields) Get(key string) string {
	if i, ok := f.find(key); ok {
		return f[2*i+1]
	}
	return ""
}
