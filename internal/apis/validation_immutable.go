package apis

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// immutableSetMsg is upstream's detail for a change to a ConfigMap or
// Secret whose `immutable` is true.
const immutableSetMsg = "field is immutable when `immutable` is set"

func isImmutable(b *bool) bool { return b != nil && *b }

// validateConfigMapUpdate refuses, once old is immutable, to make it mutable
// again or to change its data or binaryData; metadata stays writable.
func validateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	if !isImmutable(old.Immutable) {
		return nil
	}
	var errs field.ErrorList
	if !isImmutable(cm.Immutable) {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableSetMsg))
	}
	// Semantic equality: an empty map and an absent one are the same data.
	if !equality.Semantic.DeepEqual(cm.Data, old.Data) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), immutableSetMsg))
	}
	if !equality.Semantic.DeepEqual(cm.BinaryData, old.BinaryData) {
		errs = append(errs, field.Forbidden(field.NewPath("binaryData"), immutableSetMsg))
	}
	return errs
}

// validateSecretUpdate keeps type fixed and, once old is immutable, its
// immutable flag and data too. stringData was merged into data by
// defaulting, so a change there shows up as a change of data.
func validateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	if s.Type != old.Type {
		errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
	}
	if !isImmutable(old.Immutable) {
		return errs
	}
	if !isImmutable(s.Immutable) {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableSetMsg))
	}
	if !equality.Semantic.DeepEqual(s.Data, old.Data) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), immutableSetMsg))
	}
	return errs
}
