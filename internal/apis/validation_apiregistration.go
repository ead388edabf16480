package apis

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// validateAPIService follows kube-aggregator's ValidateAPIService (the
// name is checked with the metadata, by APIServiceNameValidator).
func validateAPIService(s *apiregistrationv1.APIService) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if s.Spec.Group == "" && s.Spec.Version != "v1" {
		errs = append(errs, field.Required(spec.Child("group"), "only v1 may have an empty group and it better be legacy kube"))
	}
	if s.Spec.Group != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.Spec.Group) {
			errs = append(errs, field.Invalid(spec.Child("group"), s.Spec.Group, msg))
		}
	}
	for _, msg := range validation.IsDNS1035Label(s.Spec.Version) {
		errs = append(errs, field.Invalid(spec.Child("version"), s.Spec.Version, msg))
	}
	if g := s.Spec.GroupPriorityMinimum; g <= 0 || g > 20000 {
		errs = append(errs, field.Invalid(spec.Child("groupPriorityMinimum"), g, "must be positive and less than 20000"))
	}
	if v := s.Spec.VersionPriority; v <= 0 || v > 1000 {
		errs = append(errs, field.Invalid(spec.Child("versionPriority"), v, "must be positive and less than 1000"))
	}
	ref := s.Spec.Service
	if ref == nil {
		if len(s.Spec.CABundle) != 0 {
			errs = append(errs, field.Invalid(spec.Child("caBundle"), fmt.Sprintf("%d bytes", len(s.Spec.CABundle)), "local APIServices may not have a caBundle"))
		}
		if s.Spec.InsecureSkipTLSVerify {
			errs = append(errs, field.Invalid(spec.Child("insecureSkipTLSVerify"), true, "local APIServices may not have insecureSkipTLSVerify"))
		}
		return errs
	}
	if ref.Namespace == "" {
		errs = append(errs, field.Required(spec.Child("service", "namespace"), ""))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(spec.Child("service", "name"), ""))
	}
	port := int32(0)
	if ref.Port != nil {
		port = *ref.Port
	}
	if msgs := validation.IsValidPortNum(int(port)); msgs != nil {
		errs = append(errs, field.Invalid(spec.Child("service", "port"), port, "port is not valid: "+strings.Join(msgs, ", ")))
	}
	if s.Spec.InsecureSkipTLSVerify && len(s.Spec.CABundle) > 0 {
		errs = append(errs, field.Invalid(spec.Child("insecureSkipTLSVerify"), true, "may not be true if caBundle is present"))
	}
	return errs
}

// APIServiceNameValidator returns the name rule of the APIService m: a
// path segment equal to spec.version+"."+spec.group. The generic metadata
// validation calls it, so its errors come in upstream's order.
func APIServiceNameValidator(m metav1.Object) func(name string, prefix bool) []string {
	return func(name string, _ bool) []string {
		if msgs := content.IsPathSegmentName(name); len(msgs) > 0 {
			return msgs
		}
		s, ok := m.(*apiregistrationv1.APIService)
		if !ok {
			return nil
		}
		if want := s.Spec.Version + "." + s.Spec.Group; name != want {
			return []string{fmt.Sprintf("must be `spec.version+\".\"+spec.group`: %q", want)}
		}
		return nil
	}
}

// validateAPIServiceUpdate checks the whole object again, as upstream does.
// Status updates go through the same path in Skiff; their condition
// statuses are checked here too.
func validateAPIServiceUpdate(s, old *apiregistrationv1.APIService) field.ErrorList {
	return append(validateAPIService(s), validateAPIServiceStatus(&s.Status)...)
}

func validateAPIServiceStatus(st *apiregistrationv1.APIServiceStatus) field.ErrorList {
	var errs field.ErrorList
	allowed := []string{"True", "False", "Unknown"}
	for i, c := range st.Conditions {
		switch c.Status {
		case apiregistrationv1.ConditionTrue, apiregistrationv1.ConditionFalse, apiregistrationv1.ConditionUnknown:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("status", "conditions").Index(i).Child("status"), c.Status, allowed))
		}
	}
	return errs
}
