package policy

import (
	"errors"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

// forbidden is upstream's admission Forbidden error: it names the object,
// or its generateName before a name is generated.
func forbidden(a *admission.Attributes, message string) *apierrors.StatusError {
	name := a.Name
	if name == "" {
		name = "Unknown"
		if a.Object != nil {
			if acc, err := meta.Accessor(a.Object); err != nil {
				name = "Unknown/errorGettingName"
			} else if acc.GetName() != "" {
				name = acc.GetName()
			} else if acc.GetGenerateName() != "" {
				name = acc.GetGenerateName()
			}
		}
	}
	var statusErr *apierrors.StatusError
	errors.As(apierrors.NewForbidden(a.Resource.GroupResource(), name, errors.New(message)), &statusErr)
	return statusErr
}

// reasonCode is the HTTP status of a validation's reason; reasons other
// than the four the API allows are 422, as upstream.
func reasonCode(r metav1.StatusReason) int32 {
	switch r {
	case metav1.StatusReasonForbidden:
		return http.StatusForbidden
	case metav1.StatusReasonUnauthorized:
		return http.StatusUnauthorized
	case metav1.StatusReasonRequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnprocessableEntity
}
