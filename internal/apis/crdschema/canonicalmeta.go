package crdschema

import (
	"time"
	"unicode/utf8"
)

// canonicalObjectMeta reports whether md is already what upstream's
// ObjectMeta round trip (JSON into metav1.ObjectMeta and back to a map)
// would produce from it, with no unknown or malformed field: every key a
// known field, every value of the exact type and non-empty form the
// converter emits. It is conservative: false only means "take the slow,
// exact path". Objects read from storage and most requests qualify, which
// saves coerce two reflective conversions per object.
func canonicalObjectMeta(md map[string]any) bool {
	for k, v := range md {
		var ok bool
		switch k {
		case "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion":
			ok = nonEmptyString(v)
		case "generation":
			n, isInt := v.(int64)
			ok = isInt && n != 0
		case "creationTimestamp", "deletionTimestamp":
			ok = canonicalTime(v)
		case "deletionGracePeriodSeconds":
			_, ok = v.(int64)
		case "labels", "annotations":
			ok = canonicalStringMap(v)
		case "finalizers":
			ok = canonicalStringList(v)
		case "ownerReferences":
			ok = canonicalList(v, canonicalOwnerReference)
		case "managedFields":
			ok = canonicalList(v, canonicalManagedFieldsEntry)
		}
		if !ok {
			return false
		}
	}
	return true
}

func nonEmptyString(v any) bool {
	s, ok := v.(string)
	return ok && s != "" && utf8.ValidString(s)
}

// canonicalTime is a non-zero RFC 3339 time in UTC to the second, as
// metav1.Time marshals: a string of exactly that shape that parses
// formats back to itself, so no Format is needed to compare.
func canonicalTime(v any) bool {
	s, ok := v.(string)
	if !ok || !utcSecondsShape(s) {
		return false
	}
	t, err := time.Parse(time.RFC3339, s)
	return err == nil && !t.IsZero()
}

// utcSecondsShape reports whether s looks like 2006-01-02T15:04:05Z.
func utcSecondsShape(s string) bool {
	const shape = "dddd-dd-ddTdd:dd:ddZ"
	if len(s) != len(shape) {
		return false
	}
	for i := range len(shape) {
		if shape[i] == 'd' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		} else if s[i] != shape[i] {
			return false
		}
	}
	return true
}

func canonicalStringMap(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return false
	}
	for k, e := range m {
		s, ok := e.(string)
		if !ok || !utf8.ValidString(k) || !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func canonicalStringList(v any) bool {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return false
	}
	for _, e := range l {
		s, ok := e.(string)
		if !ok || !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func canonicalList(v any, item func(map[string]any) bool) bool {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return false
	}
	for _, e := range l {
		m, ok := e.(map[string]any)
		if !ok || !item(m) {
			return false
		}
	}
	return true
}

// canonicalOwnerReference: apiVersion, kind, name and uid are always
// emitted (no omitempty), the two flags only when set.
func canonicalOwnerReference(m map[string]any) bool {
	required := 0
	for k, v := range m {
		switch k {
		case "apiVersion", "kind", "name", "uid":
			s, ok := v.(string)
			if !ok || !utf8.ValidString(s) {
				return false
			}
			required++
		case "controller", "blockOwnerDeletion":
			if _, ok := v.(bool); !ok {
				return false
			}
		default:
			return false
		}
	}
	return required == 4
}

func canonicalManagedFieldsEntry(m map[string]any) bool {
	for k, v := range m {
		var ok bool
		switch k {
		case "manager", "operation", "apiVersion", "fieldsType", "subresource":
			ok = nonEmptyString(v)
		case "time":
			ok = canonicalTime(v)
		case "fieldsV1":
			ok = canonicalFieldSet(v)
		}
		if !ok {
			return false
		}
	}
	return true
}

// canonicalFieldSet is a fieldsV1 set: objects all the way down, which
// survive the raw JSON round trip unchanged.
func canonicalFieldSet(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for k, e := range m {
		if !utf8.ValidString(k) || !canonicalFieldSet(e) {
			return false
		}
	}
	return true
}
