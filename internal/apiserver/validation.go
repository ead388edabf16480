package apiserver

import (
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// nameValidator returns the rule upstream applies to the names of a kind.
func nameValidator(r *resource) apivalidation.ValidateNameFunc {
	switch r.gr.String() {
	case "namespaces":
		return apivalidation.ValidateNamespaceName
	case "services":
		return apivalidation.NameIsDNS1035Label
	case "roles.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io",
		"rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io":
		return func(name string, prefix bool) []string { return path.IsValidPathSegmentName(name) }
	}
	return apivalidation.NameIsDNSSubdomain
}

func validateObjectMeta(r *resource, m metav1.Object) field.ErrorList {
	return apivalidation.ValidateObjectMetaAccessor(m, r.Namespaced, nameValidator(r), field.NewPath("metadata"))
}
