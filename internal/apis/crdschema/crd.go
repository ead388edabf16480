// Package crdschema holds the rules of CustomResourceDefinitions and of the
// custom objects they define: CRD defaulting and validation, and per served
// version the structural schema used to prune, default, validate and print
// custom objects. It wires the contract packages of
// k8s.io/apiextensions-apiserver so messages and field paths match
// kube-apiserver's.
package crdschema

import (
	"context"
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultCRD applies the v1 defaults of a CustomResourceDefinition
// (scope, conversion strategy, webhook service port, ...).
func DefaultCRD(crd *apiextensionsv1.CustomResourceDefinition) {
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(crd)
}

// PrepareCRDForCreate does what upstream's CRD strategy does before a create:
// it clears the status, sets generation 1 and records the storage version in
// status.storedVersions (without which validation refuses the CRD).
func PrepareCRDForCreate(crd *apiextensionsv1.CustomResourceDefinition) {
	crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
	crd.Generation = 1
	addStorageVersion(crd)
}

// PrepareCRDForUpdate does what upstream's CRD strategy does before an update
// of the main resource: status is kept from old, a spec change bumps the
// generation, and a new storage version is appended to storedVersions.
func PrepareCRDForUpdate(crd, old *apiextensionsv1.CustomResourceDefinition) {
	crd.Status = *old.Status.DeepCopy()
	if !equality.Semantic.DeepEqual(crd.Spec, old.Spec) {
		crd.Generation = old.Generation + 1
	} else {
		crd.Generation = old.Generation
	}
	addStorageVersion(crd)
}

func addStorageVersion(crd *apiextensionsv1.CustomResourceDefinition) {
	for _, v := range crd.Spec.Versions {
		if !v.Storage {
			continue
		}
		for _, stored := range crd.Status.StoredVersions {
			if stored == v.Name {
				return
			}
		}
		crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
		return
	}
}

// ValidateCRD validates a new CustomResourceDefinition with upstream's rules
// (metadata name, names, versions, structural schema, CEL rules, defaults,
// printer columns, selectable fields, stored versions).
func ValidateCRD(crd *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	internal, err := toInternal(crd)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return validation.ValidateCustomResourceDefinition(context.Background(), internal)
}

// ValidateCRDUpdate validates an update of a CustomResourceDefinition,
// including upstream's ratcheting of rules the old object already broke.
func ValidateCRDUpdate(crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	internal, err := toInternal(crd)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	internalOld, err := toInternal(old)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return validation.ValidateCustomResourceDefinitionUpdate(context.Background(), internal, internalOld)
}

// ValidateCRDStatusUpdate validates an update through the status subresource.
func ValidateCRDStatusUpdate(crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	internal, err := toInternal(crd)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	internalOld, err := toInternal(old)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return validation.ValidateUpdateCustomResourceDefinitionStatus(context.Background(), internal, internalOld)
}

// toInternal converts a v1 CRD to the internal type the validation package
// works on, as upstream's decoder does before calling the strategy.
func toInternal(crd *apiextensionsv1.CustomResourceDefinition) (*apiextensions.CustomResourceDefinition, error) {
	out := &apiextensions.CustomResourceDefinition{}
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd.DeepCopy(), out, nil); err != nil {
		return nil, fmt.Errorf("converting CustomResourceDefinition %q to the internal version: %w", crd.Name, err)
	}
	return out, nil
}
