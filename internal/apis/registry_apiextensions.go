package apis

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apis/crdschema"
)

// apiextensionsResources returns apiextensions.k8s.io/v1
// CustomResourceDefinitions; the API server serves the kinds they define.
func apiextensionsResources() []*Resource {
	r := def(apiextensionsv1.SchemeGroupVersion, "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false,
		func() runtime.Object { return &apiextensionsv1.CustomResourceDefinition{} },
		func() runtime.Object { return &apiextensionsv1.CustomResourceDefinitionList{} }, "crd", "crds").with("status")
	r.Categories = []string{"api-extensions"}
	r.ValidatesMetadata = true // apiextensions' validation checks metadata itself
	r.Default = func(obj runtime.Object) {
		if crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
			crdschema.DefaultCRD(crd)
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
		if !ok {
			return nil
		}
		return crdschema.ValidateCRD(crd)
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
		oldCRD, ok2 := old.(*apiextensionsv1.CustomResourceDefinition)
		if !ok || !ok2 {
			return nil
		}
		return crdschema.ValidateCRDUpdate(crd, oldCRD)
	}
	// Upstream prints CRDs with its default table: name and creation time.
	r.TableColumns = []metav1.TableColumnDefinition{createdAtCol}
	r.TableRow = func(o runtime.Object) []any { return []any{createdAt(o)} }
	return []*Resource{r}
}
