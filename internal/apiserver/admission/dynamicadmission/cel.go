package dynamicadmission

import (
	"errors"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The CEL variables both plugins declare, as upstream names them.
const (
	ObjectVar                    = "object"
	OldObjectVar                 = "oldObject"
	RequestVar                   = "request"
	AuthorizerVar                = "authorizer"
	RequestResourceAuthorizerVar = "authorizer.requestResource"
)

// ErrOutOfCostBudget ends an evaluation whose expressions spent their
// runtime cost budget; upstream words it so for webhooks and policies.
var ErrOutOfCostBudget = errors.New("validation failed due to running out of cost budget, no further validation rules will be run")

// ObjectToUnstructured is obj as the map CEL reads: an unstructured
// object's content, or a typed object converted. apiVersion and kind are
// those of gvk when the object carries none (typed objects often have no
// TypeMeta). The caller's object is never modified. A nil object gives a
// nil map.
func ObjectToUnstructured(obj runtime.Object, gvk schema.GroupVersionKind) (map[string]any, error) {
	if obj == nil {
		return nil, nil
	}
	var m map[string]any
	if u, ok := obj.(runtime.Unstructured); ok {
		m = u.UnstructuredContent()
	} else {
		var err error
		if m, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj); err != nil {
			return nil, err
		}
	}
	if _, ok := m["kind"]; ok || gvk.Empty() {
		return m, nil
	}
	out := make(map[string]any, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	out["apiVersion"], out["kind"] = gvk.GroupVersion().String(), gvk.Kind
	return out, nil
}
