package apiserver

import (
	"math"
	"mime"
	"net/url"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metainternalversionvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Query parameters are decoded with apimachinery's parameter codec into the
// option types and validated with its rules, so that a malformed value
// (limit=abc, dryRun=Bogus, ...) is refused with upstream's status and
// message: 400 when the value does not decode, 422 when it decodes but is
// not allowed.

// decodeParams decodes query into opts; a value that does not parse is 400.
func decodeParams(query url.Values, opts runtime.Object) error {
	if len(query) == 0 {
		return nil
	}
	if err := metainternalversionscheme.ParameterCodec.DecodeParameters(query, metav1.SchemeGroupVersion, opts); err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	return nil
}

// invalidOptions is the 422 upstream answers for options that decode but
// break the rules, e.g. `CreateOptions.meta.k8s.io "" is invalid`.
func invalidOptions(kind string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: kind}, "", errs)
}

// listOptions decodes the options of a LIST or WATCH. The WatchList
// feature is on in v1.37, so sendInitialEvents is validated as for it.
func listOptions(query url.Values) (*metainternalversion.ListOptions, error) {
	opts := &metainternalversion.ListOptions{}
	if err := decodeParams(query, opts); err != nil {
		return nil, err
	}
	if err := invalidOptions("ListOptions", metainternalversionvalidation.ValidateListOptions(opts, true)); err != nil {
		return nil, err
	}
	return opts, nil
}

// checkWriteOptions validates the options of a create, update or patch
// (dryRun, fieldManager, fieldValidation, force).
func (q *request) checkWriteOptions() error {
	query := q.r.URL.Query()
	if len(query) == 0 && q.r.Method != "PATCH" {
		return nil // nothing to check; an apply patch still needs its fieldManager
	}
	switch q.r.Method {
	case "POST":
		opts := &metav1.CreateOptions{}
		if err := decodeParams(query, opts); err != nil {
			return err
		}
		return invalidOptions("CreateOptions", metav1validation.ValidateCreateOptions(opts))
	case "PUT":
		opts := &metav1.UpdateOptions{}
		if err := decodeParams(query, opts); err != nil {
			return err
		}
		return invalidOptions("UpdateOptions", metav1validation.ValidateUpdateOptions(opts))
	case "PATCH":
		opts := &metav1.PatchOptions{}
		if err := decodeParams(query, opts); err != nil {
			return err
		}
		ct, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
		return invalidOptions("PatchOptions", metav1validation.ValidatePatchOptions(opts, types.PatchType(ct)))
	}
	return nil
}

// parseResourceVersion reads the resourceVersion of a LIST or WATCH as
// upstream does, as an unsigned number; anything else is a 400 quoting
// the parse error. Values beyond int64 can never have been reached.
func parseResourceVersion(rv string) (int64, error) {
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return 0, apierrors.NewBadRequest("invalid resource version: " +
			field.Invalid(field.NewPath("resourceVersion"), rv, err.Error()).Error())
	}
	return int64(min(n, math.MaxInt64)), nil
}
