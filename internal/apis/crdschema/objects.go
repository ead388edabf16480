package crdschema

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/common"
)

// Prune removes fields the schema does not declare (honouring
// x-kubernetes-preserve-unknown-fields, embedded resources and metadata as
// upstream) and returns the paths of what it removed, sorted, in upstream's
// unknown-field form (`spec.foo`, `spec.items[0].bar`, `metadata.foo`).
// Malformed metadata fields are dropped, as upstream does reading storage.
// obj is changed in place, so it must not share maps with another object.
func (v *Version) Prune(obj map[string]any) []string {
	paths, _ := v.coerce(obj, true)
	return paths
}

// PruneRequest is Prune as upstream's request decoder does it: malformed
// metadata (e.g. a non-string label) is an error (a 400 Bad Request upstream)
// instead of being dropped.
func (v *Version) PruneRequest(obj map[string]any) ([]string, error) {
	return v.coerce(obj, false)
}

// coerce mirrors upstream's unstructuredSchemaCoercer: it takes ObjectMeta
// out, prunes the rest, coerces embedded resources, then puts the
// (re-encoded, hence cleaned) ObjectMeta and type meta back.
func (v *Version) coerce(obj map[string]any, dropMalformed bool) ([]string, error) {
	kind, foundKind, err := unstructured.NestedString(obj, "kind")
	if err != nil {
		return nil, err
	}
	apiVersion, foundAPIVersion, err := unstructured.NestedString(obj, "apiVersion")
	if err != nil {
		return nil, err
	}
	// Metadata already in the round trip's form (the usual case) is kept
	// as it is: the round trip would rebuild an equal map, at the cost of
	// two reflective conversions. Like the rest of obj, which pruning
	// changes in place, the map belongs to the caller.
	canonicalMeta, _ := obj["metadata"].(map[string]any)
	if canonicalMeta != nil && !canonicalObjectMeta(canonicalMeta) {
		canonicalMeta = nil
	}
	var objectMeta *metav1.ObjectMeta
	var foundObjectMeta bool
	var paths []string
	if canonicalMeta == nil {
		objectMeta, foundObjectMeta, paths, err = schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{
			DropMalformedFields:     dropMalformed,
			ReturnUnknownFieldPaths: true,
		})
		if err != nil {
			return nil, err
		}
	}

	if !v.preserveUnknownFields {
		paths = append(paths, structuralpruning.PruneWithOptions(obj, v.structural, true,
			structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
	}
	ferr, embedded := schemaobjectmeta.CoerceWithOptions(nil, obj, v.structural, false, schemaobjectmeta.CoerceOptions{
		DropInvalidFields:       dropMalformed,
		ReturnUnknownFieldPaths: true,
	})
	if ferr != nil {
		return nil, ferr
	}
	paths = append(paths, embedded...)

	if foundKind {
		obj["kind"] = kind
	}
	if foundAPIVersion {
		obj["apiVersion"] = apiVersion
	}
	if canonicalMeta != nil {
		obj["metadata"] = canonicalMeta
	} else if foundObjectMeta {
		if err := schemaobjectmeta.SetObjectMeta(obj, objectMeta); err != nil {
			return nil, err
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// Default applies schema defaults (after pruning), as upstream.
func (v *Version) Default(obj map[string]any) {
	if v.structural == nil {
		return
	}
	structuraldefaulting.Default(obj, v.structural)
}

// Validate checks a new custom object as upstream's strategy does: type meta,
// the OpenAPI schema (types, formats, enums, patterns, bounds, required,
// int-or-string), scale paths, embedded ObjectMeta, list-type uniqueness, and
// CEL rules within upstream's cost budget. The object's own metadata is left
// to the caller's generic checks.
func (v *Version) Validate(ctx context.Context, obj map[string]any) field.ErrorList {
	errs := v.validateTypeMeta(obj)
	if len(errs) == 0 {
		errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, v.validator)...)
		errs = append(errs, v.validateScale(obj)...)
	}
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, v.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	return append(errs, v.validateCEL(ctx, errs, obj, nil)...)
}

// ValidateUpdate is Validate plus transition rules (oldSelf) and upstream's
// ratcheting: values left unchanged since old are not refused again.
func (v *Version) ValidateUpdate(ctx context.Context, obj, old map[string]any) field.ErrorList {
	correlated := common.NewCorrelatedObject(obj, old, &model.Structural{Structural: v.structural})

	errs := v.validateTypeMeta(obj)
	if len(errs) == 0 {
		errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, obj, old, v.validator,
			apiservervalidation.WithRatcheting(correlated))...)
		errs = append(errs, v.validateScale(obj)...)
	}
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, v.structural, false)...)
	if oldErrs := structurallisttype.ValidateListSetsAndMaps(nil, v.structural, old); len(oldErrs) == 0 {
		errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	}
	return append(errs, v.validateCEL(ctx, errs, obj, old, cel.WithRatcheting(correlated))...)
}

// ValidateStatusUpdate checks an update through the status subresource as
// upstream's status strategy does: only status is checked against the
// schema, while list types and CEL rules see the whole object.
func (v *Version) ValidateStatusUpdate(ctx context.Context, obj, old map[string]any) field.ErrorList {
	correlated := common.NewCorrelatedObject(obj, old, &model.Structural{Structural: v.structural})

	errs := v.validateTypeMeta(obj)
	if len(errs) == 0 {
		if status, ok := obj["status"]; ok && v.statusValidator != nil {
			var opts []apiservervalidation.ValidationOption
			if v.structural != nil {
				opts = append(opts, apiservervalidation.WithRatcheting(correlated.Key("status")))
			}
			errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(field.NewPath("status"), status, old["status"], v.statusValidator, opts...)...)
		}
		errs = append(errs, v.validateScaleStatus(obj)...)
	}
	if newErrs := structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj); len(newErrs) > 0 {
		if oldErrs := structurallisttype.ValidateListSetsAndMaps(nil, v.structural, old); len(oldErrs) == 0 {
			errs = append(errs, newErrs...)
		}
	}
	return append(errs, v.validateCEL(ctx, errs, obj, old, cel.WithRatcheting(correlated))...)
}

// validateCEL runs the x-kubernetes-validations rules unless errs holds an
// error that makes the object unfit for them, as upstream.
func (v *Version) validateCEL(ctx context.Context, errs field.ErrorList, obj, old map[string]any, opts ...cel.Option) field.ErrorList {
	if v.celValidator == nil {
		return nil
	}
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.ErrorList{field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")}
		}
	}
	var oldObj any
	if old != nil {
		oldObj = old
	}
	celErrs, _ := v.celValidator.Validate(ctx, nil, v.structural, obj, oldObj, celconfig.RuntimeCELCostBudget, opts...)
	return celErrs
}

func (v *Version) validateTypeMeta(obj map[string]any) field.ErrorList {
	var errs field.ErrorList
	kind, _ := obj["kind"].(string)
	if kind != v.gvk.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), kind, fmt.Sprintf("must be %v", v.gvk.Kind)))
	}
	apiVersion, _ := obj["apiVersion"].(string)
	if want := v.gvk.Group + "/" + v.gvk.Version; apiVersion != want {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), apiVersion, fmt.Sprintf("must be %v", want)))
	}
	return errs
}

func (v *Version) validateScale(obj map[string]any) field.ErrorList {
	if v.scale == nil {
		return nil
	}
	errs := validateReplicas(obj, v.scale.SpecReplicasPath)
	return append(errs, v.validateScaleStatus(obj)...)
}

func (v *Version) validateScaleStatus(obj map[string]any) field.ErrorList {
	if v.scale == nil {
		return nil
	}
	errs := validateReplicas(obj, v.scale.StatusReplicasPath)
	if v.scale.LabelSelectorPath != nil {
		p := *v.scale.LabelSelectorPath
		selector, _, err := unstructured.NestedString(obj, strings.Split(strings.TrimPrefix(p, "."), ".")...)
		if err != nil {
			errs = append(errs, field.Invalid(field.NewPath(p), selector, err.Error()))
		}
	}
	return errs
}

// validateReplicas checks the replicas at a scale path (".spec.replicas")
// with upstream's messages; the path itself names the field, as upstream.
func validateReplicas(obj map[string]any, path string) field.ErrorList {
	replicas, _, err := unstructured.NestedInt64(obj, strings.Split(strings.TrimPrefix(path, "."), ".")...)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(field.NewPath(path), replicas, err.Error())}
	case replicas < 0:
		return field.ErrorList{field.Invalid(field.NewPath(path), replicas, "should be a non-negative integer")}
	case replicas > math.MaxInt32:
		return field.ErrorList{field.Invalid(field.NewPath(path), replicas, fmt.Sprintf("should be less than or equal to %v", math.MaxInt32))}
	}
	return nil
}
