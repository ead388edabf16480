package apiserver

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apis"
)

// nameValidator returns the rule upstream applies to the names of a kind.
func nameValidator(r *resource, m metav1.Object) apivalidation.ValidateNameFunc {
	switch r.gr.String() {
	case "namespaces":
		return apivalidation.ValidateNamespaceName
	case "services", "statefulsets.apps":
		// Services: DNS labels since RelaxedServiceNameValidation (GA in 1.37).
		return apivalidation.NameIsDNSLabel
	case "certificatesigningrequests.certificates.k8s.io",
		"clustertrustbundles.certificates.k8s.io": // checked against the signer name in package apis
		return func(string, bool) []string { return nil }
	case "apiservices.apiregistration.k8s.io": // must be spec.version+"."+spec.group
		return apis.APIServiceNameValidator(m)
	case "ipaddresses.networking.k8s.io":
		return apis.ValidateIPAddressName
	case "roles.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io",
		"rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io":
		return func(name string, prefix bool) []string { return path.IsValidPathSegmentName(name) }
	}
	return apivalidation.NameIsDNSSubdomain
}

func validateObjectMeta(r *resource, m metav1.Object) field.ErrorList {
	p := field.NewPath("metadata")
	errs := apivalidation.ValidateObjectMetaAccessor(m, r.Namespaced, nameValidator(r, m), p)
	// Built-in kinds also refuse finalizers that are neither qualified by
	// a domain nor one of the standard ones.
	for i, f := range m.GetFinalizers() {
		if r.custom != nil {
			break // custom objects only need qualified names
		}
		if !strings.Contains(f, "/") && !standardFinalizers[f] {
			errs = append(errs, field.Invalid(p.Child("finalizers").Index(i), f, "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return errs
}

// standardFinalizers are the finalizers built-in kinds may name without a
// domain.
var standardFinalizers = map[string]bool{
	string(corev1.FinalizerKubernetes): true,
	metav1.FinalizerOrphanDependents:   true,
	metav1.FinalizerDeleteDependents:   true,
}
