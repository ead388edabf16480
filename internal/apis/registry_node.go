package apis

import (
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// nodeResources returns the node.k8s.io resources (RuntimeClass), with
// their behaviour attached: RuntimeClasses name the CRI runtime handler a
// pod's sandbox runs with, plus the overhead and scheduling constraints
// the RuntimeClass admission plugin copies into the pod.
func nodeResources() []*Resource {
	rc := def(nodev1.SchemeGroupVersion, "runtimeclasses", "runtimeclass", "RuntimeClass", false,
		func() runtime.Object { return &nodev1.RuntimeClass{} }, func() runtime.Object { return &nodev1.RuntimeClassList{} })
	attachBehaviour(rc)
	rc.Validate = func(obj runtime.Object) field.ErrorList { return validateRuntimeClass(obj.(*nodev1.RuntimeClass)) }
	rc.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateRuntimeClassUpdate(obj.(*nodev1.RuntimeClass), old.(*nodev1.RuntimeClass))
	}
	// upstream's printer: NAME, HANDLER, AGE. (Upstream leaves the handler
	// column's description empty; the field's documentation is used here.)
	rc.TableColumns = []metav1.TableColumnDefinition{col("Handler", "string", nodev1.RuntimeClass{}.SwaggerDoc()["handler"], 0), ageCol}
	rc.TableRow = func(obj runtime.Object) []any { return []any{obj.(*nodev1.RuntimeClass).Handler, age(obj)} }
	return []*Resource{rc}
}
