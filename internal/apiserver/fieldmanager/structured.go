package fieldmanager

import (
	"fmt"
	"maps"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// VersionConvertFunc converts obj (an *unstructured.Unstructured of some
// version of the kind) to the group-version gv. It lets managers recorded
// under another served version keep their fields across versions whose
// shapes differ.
type VersionConvertFunc func(obj runtime.Object, gv schema.GroupVersion) (runtime.Object, error)

// versionConverter lets merge.Updater compare an object in the version each
// manager's fields were recorded in.
type versionConverter struct {
	tc      managedfields.TypeConverter
	convert VersionConvertFunc // nil: reparse the same fields under the other version
}

// missingVersionError makes the updater drop the fields of a manager whose
// version cannot be converted to, as upstream does for versions no longer
// served.
type missingVersionError struct {
	gv  schema.GroupVersion
	err error
}

func (e *missingVersionError) Error() string {
	return fmt.Sprintf("no conversion to %v: %v", e.gv, e.err)
}

func (c versionConverter) Convert(tv *typed.TypedValue, version fieldpath.APIVersion) (*typed.TypedValue, error) {
	gv, err := schema.ParseGroupVersion(string(version))
	if err != nil {
		return tv, err
	}
	content, ok := tv.AsValue().Unstructured().(map[string]any)
	if !ok {
		return tv, fmt.Errorf("object is a %T, not a map", tv.AsValue().Unstructured())
	}
	if apiVersion, _ := content["apiVersion"].(string); apiVersion == gv.String() {
		return tv, nil
	}
	var obj runtime.Object
	if c.convert != nil {
		obj, err = c.convert(&unstructured.Unstructured{Object: content}, gv)
		if err != nil {
			return tv, &missingVersionError{gv: gv, err: err}
		}
	} else {
		content = maps.Clone(content)
		content["apiVersion"] = gv.String()
		obj = &unstructured.Unstructured{Object: content}
	}
	out, err := c.tc.ObjectToTyped(obj, typed.AllowDuplicates)
	if err != nil {
		return tv, &missingVersionError{gv: gv, err: err}
	}
	return out, nil
}

func (c versionConverter) IsMissingVersionError(err error) bool {
	_, ok := err.(*missingVersionError)
	return ok
}

// toUnstructured returns obj's content as an Unstructured of m's kind,
// without managedFields. It never modifies obj.
func (m *Manager) toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	var content map[string]any
	switch o := obj.(type) {
	case nil:
		content = map[string]any{}
	case *unstructured.Unstructured:
		content = maps.Clone(o.Object)
		if md, ok := content["metadata"].(map[string]any); ok {
			md = maps.Clone(md)
			delete(md, "managedFields")
			content["metadata"] = md
		}
	default:
		var err error
		if content, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj); err != nil {
			return nil, fmt.Errorf("convert %T to unstructured: %w", obj, err)
		}
		if md, ok := content["metadata"].(map[string]any); ok {
			delete(md, "managedFields")
		}
	}
	if content == nil {
		content = map[string]any{}
	}
	u := &unstructured.Unstructured{Object: content}
	u.SetGroupVersionKind(m.gvk)
	return u, nil
}

// describe names an object in error messages as upstream does.
func describe(obj runtime.Object) string {
	name, namespace := "<unknown>", "<unknown>"
	if a, err := meta.Accessor(obj); err == nil {
		name, namespace = a.GetName(), a.GetNamespace()
	}
	return fmt.Sprintf("%v/%v; %v", namespace, name, obj.GetObjectKind().GroupVersionKind())
}

// fromUnstructured converts a merge result back to the Go type of like.
func fromUnstructured(u *unstructured.Unstructured, like runtime.Object) (runtime.Object, error) {
	if _, ok := like.(*unstructured.Unstructured); ok || like == nil {
		return u, nil
	}
	t := reflect.TypeOf(like)
	if t.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("object type %T is not a pointer", like)
	}
	out, ok := reflect.New(t.Elem()).Interface().(runtime.Object)
	if !ok {
		return nil, fmt.Errorf("new %T is not an object", like)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return nil, fmt.Errorf("convert merged object to %T: %w", like, err)
	}
	out.GetObjectKind().SetGroupVersionKind(like.GetObjectKind().GroupVersionKind())
	return out, nil
}

// emptyLike returns an empty object of obj's Go type (of m's kind for nil or
// unstructured objects): what upstream's object creater makes for a create,
// so zero-valued fields of typed objects do not count as set by anyone.
func (m *Manager) emptyLike(obj runtime.Object) runtime.Object {
	if obj != nil {
		if t := reflect.TypeOf(obj); t.Kind() == reflect.Pointer {
			if _, isUnstructured := obj.(*unstructured.Unstructured); !isUnstructured {
				if empty, ok := reflect.New(t.Elem()).Interface().(runtime.Object); ok {
					return empty
				}
			}
		}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(m.gvk)
	return u
}
