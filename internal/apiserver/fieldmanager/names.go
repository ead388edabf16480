package fieldmanager

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxManagerLength is the longest fieldManager upstream accepts.
const maxManagerLength = 128

// ManagerName is upstream's default field manager for a request without
// ?fieldManager=: the user agent's program name (prefix before the first
// '/'), without unprintable characters, cut to the maximum length.
func ManagerName(userAgent string) string {
	prefix, _, _ := strings.Cut(userAgent, "/")
	var b strings.Builder
	for _, r := range prefix {
		if !unicode.IsPrint(r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > maxManagerLength {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ManagerErrors checks the fieldManager query parameter like upstream:
// at most 128 bytes, printable characters only, and required for apply.
func ManagerErrors(name string, apply bool) field.ErrorList {
	path := field.NewPath("fieldManager")
	var errs field.ErrorList
	if apply && name == "" {
		errs = append(errs, field.Required(path, "is required for apply patch"))
	}
	if len(name) > maxManagerLength {
		errs = append(errs, field.TooLong(path, "", maxManagerLength))
	}
	for i, r := range name {
		if !unicode.IsPrint(r) {
			errs = append(errs, field.Invalid(path, name, fmt.Sprintf("invalid character %#U (at position %d)", r, i)))
		}
	}
	return errs
}

// ValidateManager checks the fieldManager query parameter like upstream
// (length ≤ 128, printable; required for apply). The error is upstream's 422
// about PatchOptions for apply and UpdateOptions otherwise; use
// ManagerErrors to report against CreateOptions.
func ValidateManager(name string, apply bool) error {
	kind := "UpdateOptions"
	if apply {
		kind = "PatchOptions"
	}
	return ValidateManagerFor(name, apply, kind)
}

// ValidateManagerFor is ValidateManager reporting against the options kind
// of the request (CreateOptions, UpdateOptions or PatchOptions).
func ValidateManagerFor(name string, apply bool, optionsKind string) error {
	errs := ManagerErrors(name, apply)
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: optionsKind}, "", errs)
}
