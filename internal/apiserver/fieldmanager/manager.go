// Package fieldmanager implements server-side apply and the bookkeeping of
// metadata.managedFields, with kube-apiserver's behaviour, on top of
// structured-merge-diff. A Manager serves one kind in one version, for the
// main resource or one subresource.
package fieldmanager

import (
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/merge"
)

// now is the time recorded in managedFields entries; tests override it.
var now = func() metav1.Time { return metav1.Time{Time: time.Now().UTC()} }

const (
	// maxUpdateManagers is how many Update entries an object keeps before the
	// oldest are merged into "ancient-changes".
	maxUpdateManagers = 10
	ancientChanges    = "ancient-changes"
	// beforeFirstApply owns the fields an object had when it was first
	// applied to without any managedFields.
	beforeFirstApply = "before-first-apply"
	// currentOperation is a placeholder manager that tells whether an update
	// changed any field.
	currentOperation = "current-operation"
	// kubectlManager is the only manager whose applies migrate from, and keep
	// up to date, the client-side apply annotation.
	kubectlManager = "kubectl"
)

// Manager tracks field ownership for one kind in one served version.
type Manager struct {
	tc          managedfields.TypeConverter
	gvk         schema.GroupVersionKind
	subresource string
	updater     merge.Updater
	defaulter   func(runtime.Object)
}

// New returns the field manager for objects of gvk (the served version) and
// subresource ("" or "status", "scale").
func New(tc managedfields.TypeConverter, gvk schema.GroupVersionKind, subresource string) *Manager {
	return &Manager{
		tc:          tc,
		gvk:         gvk,
		subresource: subresource,
		updater:     merge.Updater{Converter: versionConverter{tc: tc}},
	}
}

// WithResetFields makes the manager ignore fields the request path resets
// (upstream's strategies' GetResetFields: "status" on the main resource,
// "spec" and "metadata.labels" on a status subresource...): nobody comes to
// own them through this endpoint.
func (m *Manager) WithResetFields(fields *fieldpath.Set) *Manager {
	m.updater.IgnoreFilter = map[fieldpath.APIVersion]fieldpath.Filter{
		fieldpath.APIVersion(m.gvk.GroupVersion().String()): fieldpath.NewExcludeSetFilter(fields),
	}
	return m
}

// WithDefaulter sets the defaulting applied to the result of a merge, as
// upstream defaults an applied object before admission.
func (m *Manager) WithDefaulter(d func(runtime.Object)) *Manager {
	m.defaulter = d
	return m
}

// WithVersionConverter sets how objects convert between the kind's served
// versions, for managers recorded under another version.
func (m *Manager) WithVersionConverter(fn VersionConvertFunc) *Manager {
	m.updater.Converter = versionConverter{tc: m.tc, convert: fn}
	return m
}

func (m *Manager) apiVersion() fieldpath.APIVersion {
	return fieldpath.APIVersion(m.gvk.GroupVersion().String())
}

// id is the identifier of manager's entry for operation op.
func (m *Manager) id(manager string, op metav1.ManagedFieldsOperationType) (string, error) {
	if manager == "" {
		manager = "unknown"
	}
	return managerID(metav1.ManagedFieldsEntry{
		Manager:     manager,
		Operation:   op,
		APIVersion:  m.gvk.GroupVersion().String(),
		Subresource: m.subresource,
	})
}

// Update records that manager changed live into next (create: live is nil
// or an empty object; update, merge/json/strategic patch). Returns next with
// managedFields set. managedFields in next win when valid (a client may edit
// them; an empty list resets them); otherwise live's are kept.
func (m *Manager) Update(live, next runtime.Object, manager string) (runtime.Object, error) {
	nextMeta, err := meta.Accessor(next)
	if err != nil {
		return next, nil // objects without metadata have no managedFields
	}
	var liveEntries []metav1.ManagedFieldsEntry
	var liveUID string
	if live != nil {
		if liveMeta, err := meta.Accessor(live); err == nil {
			liveEntries, liveUID = liveMeta.GetManagedFields(), string(liveMeta.GetUID())
		}
	}
	var mf *managed
	switch requested := nextMeta.GetManagedFields(); {
	case m.subresource != "":
		// A subresource cannot change managedFields.
		mf = decodeOrEmpty(liveEntries)
	case isReset(requested):
		mf = emptyManaged()
	default:
		mf, err = decodeManaged(requested)
		if err != nil || len(mf.fields) == 0 {
			mf = decodeOrEmpty(liveEntries)
		}
	}
	nextMeta.SetManagedFields(nil)
	if live == nil {
		live = m.emptyLike(next)
	}
	// An existing object nobody tracks stays untracked until its first apply.
	if len(mf.fields) == 0 && liveUID != "" {
		return next, nil
	}
	if mf, err = m.update(live, next, mf, manager); err != nil {
		return nil, err
	}
	entries, err := mf.encode()
	if err != nil {
		return nil, fmt.Errorf("failed to encode managed fields: %w", err)
	}
	nextMeta.SetManagedFields(entries)
	return next, nil
}

// UpdateNoErrors is Update for the request path: should tracking fail, next
// keeps live's managedFields rather than failing the write.
func (m *Manager) UpdateNoErrors(live, next runtime.Object, manager string) runtime.Object {
	out, err := m.Update(live, next, manager)
	if err == nil {
		return out
	}
	nextMeta, aerr := meta.Accessor(next)
	if aerr != nil {
		return next
	}
	slog.Error("managed fields not updated; keeping the previous ones", "kind", m.gvk.String(),
		"namespace", nextMeta.GetNamespace(), "name", nextMeta.GetName(), "err", err)
	var entries []metav1.ManagedFieldsEntry
	if live != nil {
		if liveMeta, err := meta.Accessor(live); err == nil {
			entries = liveMeta.GetManagedFields()
		}
	}
	nextMeta.SetManagedFields(entries)
	return next
}

// update attributes the fields that changed from live to next to manager's
// Update entry, stamping its time only when something changed, then caps the
// number of Update entries. mf is not modified.
func (m *Manager) update(live, next runtime.Object, mf *managed, manager string) (*managed, error) {
	id, err := m.id(manager, metav1.ManagedFieldsOperationUpdate)
	if err != nil {
		return nil, fmt.Errorf("failed to build manager identifier: %w", err)
	}
	liveU, err := m.toUnstructured(live)
	if err != nil {
		return nil, err
	}
	nextU, err := m.toUnstructured(next)
	if err != nil {
		return nil, err
	}
	liveTyped, err := m.tc.ObjectToTyped(liveU, typedAllowDuplicates...)
	if err != nil {
		return nil, fmt.Errorf("failed to convert live object (%v) to smd typed: %w", describe(liveU), err)
	}
	nextTyped, err := m.tc.ObjectToTyped(nextU, typedAllowDuplicates...)
	if err != nil {
		return nil, fmt.Errorf("failed to convert new object (%v) to smd typed: %w", describe(nextU), err)
	}
	out := mf.clone()
	_, fields, err := m.updater.Update(liveTyped, nextTyped, m.apiVersion(), out.fields, currentOperation)
	if err != nil {
		return nil, fmt.Errorf("failed to update ManagedFields (%v): %w", describe(nextU), err)
	}
	out.fields = fields
	stripMeta(out.fields, currentOperation)
	if changed, ok := out.fields[currentOperation]; ok {
		delete(out.fields, currentOperation)
		set := changed.Set()
		if previous, ok := out.fields[id]; ok {
			set = set.Union(previous.Set())
		}
		out.fields[id] = fieldpath.NewVersionedSet(set, changed.APIVersion(), false)
		t := now()
		out.times[id] = &t
	}
	if err := capUpdateManagers(out); err != nil {
		return nil, fmt.Errorf("failed to cap update managers: %w", err)
	}
	return out, nil
}

func (mf *managed) clone() *managed {
	out := &managed{fields: make(fieldpath.ManagedFields, len(mf.fields)), times: make(map[string]*metav1.Time, len(mf.times))}
	for k, v := range mf.fields {
		out.fields[k] = v
	}
	for k, v := range mf.times {
		out.times[k] = v
	}
	return out
}

// metaFields are never owned: identity and system metadata.
var metaFields = fieldpath.NewSet(
	fieldpath.MakePathOrDie("apiVersion"),
	fieldpath.MakePathOrDie("kind"),
	fieldpath.MakePathOrDie("metadata"),
	fieldpath.MakePathOrDie("metadata", "name"),
	fieldpath.MakePathOrDie("metadata", "namespace"),
	fieldpath.MakePathOrDie("metadata", "creationTimestamp"),
	fieldpath.MakePathOrDie("metadata", "selfLink"),
	fieldpath.MakePathOrDie("metadata", "uid"),
	fieldpath.MakePathOrDie("metadata", "clusterName"),
	fieldpath.MakePathOrDie("metadata", "generation"),
	fieldpath.MakePathOrDie("metadata", "managedFields"),
	fieldpath.MakePathOrDie("metadata", "resourceVersion"),
)

// stripMeta removes metaFields from id's set, and the entry if nothing is left.
func stripMeta(fields fieldpath.ManagedFields, id string) {
	vs, ok := fields[id]
	if !ok || vs == nil {
		return
	}
	set := vs.Set().Difference(metaFields)
	if set.Empty() {
		delete(fields, id)
		return
	}
	fields[id] = fieldpath.NewVersionedSet(set, vs.APIVersion(), vs.Applied())
}
