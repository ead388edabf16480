package fieldmanager

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/structured-merge-diff/v6/merge"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// typedAllowDuplicates parses stored objects, which may hold duplicate list
// keys written before the schema declared them; apply configurations may not.
var typedAllowDuplicates = []typed.ValidationOptions{typed.AllowDuplicates}

// Apply merges patch (the apply configuration, YAML or JSON) into live as
// manager. live is the current object (typed or *unstructured.Unstructured),
// or for a create through apply an empty object of the right type with at
// most apiVersion, kind, name and namespace set. It returns the new object
// (same Go type as live) with managedFields updated, a 409 Conflict when
// the patch changes fields others own and force is false, or a 400 for a
// malformed patch.
func (m *Manager) Apply(live runtime.Object, patch []byte, manager string, force bool) (runtime.Object, error) {
	liveMeta, err := meta.Accessor(live)
	if err != nil {
		return nil, fmt.Errorf("couldn't get accessor: %w", err)
	}
	patchObj := &unstructured.Unstructured{Object: map[string]any{}}
	if err := yaml.Unmarshal(patch, &patchObj.Object); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
	}
	if patchObj.Object == nil {
		patchObj.Object = map[string]any{}
	}
	mf, err := decodeManaged(liveMeta.GetManagedFields())
	if err != nil {
		return nil, fmt.Errorf("failed to decode managed fields: %w", err)
	}
	if gvk := patchObj.GroupVersionKind(); gvk != m.gvk {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid object type: %v", gvk))
	}

	merged, applied, err := m.apply(live, patchObj, mf, manager, force)
	var conflicts merge.Conflicts
	if manager == kubectlManager && errors.As(err, &conflicts) {
		// kubectl apply --server-side takes over from client-side apply: the
		// fields its last-applied annotation set, and still holds, are not
		// conflicts.
		if allowed, aerr := m.lastAppliedFields(live); aerr == nil {
			if rest := conflictsOutside(conflicts, allowed); len(rest) > 0 {
				err = rest
			} else {
				merged, applied, err = m.apply(live, patchObj, mf, manager, true)
			}
		}
	}
	if err != nil {
		if errors.As(err, &conflicts) {
			return nil, conflictError(conflicts)
		}
		return nil, err
	}

	var result runtime.Object
	if merged == nil {
		// Nothing changed: the live object, with its ownership updated.
		result = live.DeepCopyObject()
	} else {
		if result, err = fromUnstructured(merged, live); err != nil {
			return nil, err
		}
		if m.defaulter != nil {
			m.defaulter(result)
		}
	}
	if manager == kubectlManager && hasLastApplied(result) {
		value, err := lastAppliedValue(patchObj)
		if err != nil {
			return nil, fmt.Errorf("failed to build last-applied annotation: %w", err)
		}
		setLastApplied(result, value)
	}
	entries, err := applied.encode()
	if err != nil {
		return nil, fmt.Errorf("failed to encode managed fields: %w", err)
	}
	resultMeta, err := meta.Accessor(result)
	if err != nil {
		return nil, fmt.Errorf("couldn't get accessor: %w", err)
	}
	resultMeta.SetManagedFields(entries)
	return result, nil
}

// apply merges patchObj into live for manager. The merged object is nil
// when live does not change. mf is not modified.
func (m *Manager) apply(live runtime.Object, patchObj *unstructured.Unstructured, mf *managed, manager string, force bool) (*unstructured.Unstructured, *managed, error) {
	if len(mf.fields) == 0 {
		// Fields set before anyone applied belong to a placeholder updater,
		// so the first applier must force to take those it changes.
		var err error
		if mf, err = m.update(m.emptyLike(live), live, mf, beforeFirstApply); err != nil {
			return nil, nil, fmt.Errorf("failed to create manager for existing fields: %w", err)
		}
	}
	id, err := m.id(manager, metav1.ManagedFieldsOperationApply)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to build manager identifier: %w", err)
	}
	if patchObj.GetManagedFields() != nil {
		return nil, nil, apierrors.NewBadRequest("metadata.managedFields must be nil")
	}
	liveU, err := m.toUnstructured(live)
	if err != nil {
		return nil, nil, err
	}
	patchTyped, err := m.tc.ObjectToTyped(patchObj)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create typed patch object (%v): %w", describe(patchObj), err)
	}
	liveTyped, err := m.tc.ObjectToTyped(liveU, typedAllowDuplicates...)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create typed live object (%v): %w", describe(liveU), err)
	}
	out := mf.clone()
	newTyped, fields, err := m.updater.Apply(liveTyped, patchTyped, m.apiVersion(), out.fields, id, force)
	if err != nil {
		return nil, nil, err
	}
	out.fields = fields
	stripMeta(out.fields, id)
	if newTyped == nil {
		return nil, out, nil
	}
	t := now()
	out.times[id] = &t
	obj, err := m.tc.TypedToObject(newTyped)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to convert new typed object (%v) to object: %w", describe(patchObj), err)
	}
	merged, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil, fmt.Errorf("merged object is a %T, want unstructured", obj)
	}
	return merged, out, nil
}
