package fieldmanager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// managed is the decoded form of metadata.managedFields: the field set of
// every manager, keyed by its identifier (see managerID), and the time of
// each manager's last change.
type managed struct {
	fields fieldpath.ManagedFields
	times  map[string]*metav1.Time
}

func emptyManaged() *managed {
	return &managed{fields: fieldpath.ManagedFields{}, times: map[string]*metav1.Time{}}
}

// managerID identifies a managedFields entry by everything but its fields
// and time, encoded as JSON. Appliers are one entry whatever the version they
// applied with, so their apiVersion is left out.
func managerID(e metav1.ManagedFieldsEntry) (string, error) {
	e.FieldsType = ""
	e.FieldsV1 = nil
	e.Time = nil
	if e.Operation == metav1.ManagedFieldsOperationApply {
		e.APIVersion = ""
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return "", fmt.Errorf("encode manager identifier: %w", err)
	}
	return string(b), nil
}

// decodeManaged parses managedFields entries, rejecting entries upstream
// rejects.
func decodeManaged(entries []metav1.ManagedFieldsEntry) (*managed, error) {
	m := &managed{
		fields: make(fieldpath.ManagedFields, len(entries)),
		times:  make(map[string]*metav1.Time, len(entries)),
	}
	for i, e := range entries {
		switch e.Operation {
		case metav1.ManagedFieldsOperationApply, metav1.ManagedFieldsOperationUpdate:
		default:
			return nil, errors.New("operation must be `Apply` or `Update`")
		}
		if e.APIVersion == "" {
			return nil, errors.New("apiVersion must not be empty")
		}
		switch e.FieldsType {
		case "FieldsV1":
		case "":
			return nil, fmt.Errorf("missing fieldsType in managed fields entry %d", i)
		default:
			return nil, fmt.Errorf("invalid fieldsType %q in managed fields entry %d", e.FieldsType, i)
		}
		id, err := managerID(e)
		if err != nil {
			return nil, fmt.Errorf("error decoding manager from %v: %w", e, err)
		}
		set := &fieldpath.Set{}
		if e.FieldsV1 != nil {
			if err := set.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
				return nil, fmt.Errorf("error decoding versioned set from %v: error decoding set: %w", e, err)
			}
		}
		m.fields[id] = fieldpath.NewVersionedSet(set, fieldpath.APIVersion(e.APIVersion), e.Operation == metav1.ManagedFieldsOperationApply)
		m.times[id] = e.Time
	}
	return m, nil
}

// decodeOrEmpty is decodeManaged that treats invalid entries as none, as
// upstream does where it cannot report them.
func decodeOrEmpty(entries []metav1.ManagedFieldsEntry) *managed {
	m, err := decodeManaged(entries)
	if err != nil {
		return emptyManaged()
	}
	return m
}

// encode renders m as managedFields entries, in upstream's order: Apply
// before Update, then oldest first, then by manager, version, subresource.
func (m *managed) encode() ([]metav1.ManagedFieldsEntry, error) {
	if len(m.fields) == 0 {
		return nil, nil
	}
	out := make([]metav1.ManagedFieldsEntry, 0, len(m.fields))
	for id, vs := range m.fields {
		var e metav1.ManagedFieldsEntry
		if err := json.Unmarshal([]byte(id), &e); err != nil {
			return nil, fmt.Errorf("decode manager identifier %s: %w", id, err)
		}
		e.APIVersion = string(vs.APIVersion())
		if vs.Applied() {
			e.Operation = metav1.ManagedFieldsOperationApply
		}
		raw, err := vs.Set().ToJSON()
		if err != nil {
			return nil, fmt.Errorf("encode fields of %s: %w", e.Manager, err)
		}
		e.FieldsType = "FieldsV1"
		e.FieldsV1 = &metav1.FieldsV1{Raw: raw}
		if t, ok := m.times[id]; ok {
			e.Time = t
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		p, q := out[i], out[j]
		if p.Operation != q.Operation {
			return p.Operation < q.Operation
		}
		if ps, qs := unixOf(p.Time), unixOf(q.Time); ps != qs {
			return ps < qs
		}
		if p.Manager != q.Manager {
			return p.Manager < q.Manager
		}
		if p.APIVersion != q.APIVersion {
			return p.APIVersion < q.APIVersion
		}
		return p.Subresource < q.Subresource
	})
	return out, nil
}

func unixOf(t *metav1.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

// isReset reports whether a client asks to clear managedFields: an empty
// but non-nil list, or a list of one empty entry.
func isReset(entries []metav1.ManagedFieldsEntry) bool {
	switch len(entries) {
	case 0:
		return entries != nil
	case 1:
		return reflect.DeepEqual(entries[0], metav1.ManagedFieldsEntry{})
	}
	return false
}
