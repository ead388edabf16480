package crdschema

import (
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// Version is one served version of a CRD, compiled once when the CRD changes.
// It is safe for concurrent use.
type Version struct {
	gvk        schema.GroupVersionKind
	namespaced bool
	// preserveUnknownFields is the CRD's spec.preserveUnknownFields: nothing
	// is pruned at the root.
	preserveUnknownFields bool

	// structural has its defaults pruned, as used for objects; published is
	// the schema as written, for OpenAPI documents. Both nil without a schema.
	structural *structuralschema.Structural
	published  *structuralschema.Structural

	validator       apiservervalidation.SchemaValidator
	statusValidator apiservervalidation.SchemaValidator // nil without a status subresource
	celValidator    *cel.Validator                      // nil without x-kubernetes-validations
	scale           *apiextensions.CustomResourceSubresourceScale

	columns    []column
	selectable []string // JSONPaths of spec.versions[].selectableFields
}

// Compile prepares the named version of crd for serving custom objects: its
// structural schema, OpenAPI validator, CEL programs, columns and selectable
// fields. It fails on a version the CRD does not have or on a schema
// upstream could not serve (validation refuses such CRDs).
func Compile(crd *apiextensionsv1.CustomResourceDefinition, version string) (*Version, error) {
	var spec *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == version {
			spec = &crd.Spec.Versions[i]
			break
		}
	}
	if spec == nil {
		return nil, fmt.Errorf("version %s not found in CustomResourceDefinition %s", version, crd.Name)
	}

	kind := crd.Status.AcceptedNames.Kind
	if kind == "" {
		kind = crd.Spec.Names.Kind
	}
	v := &Version{
		gvk:                   schema.GroupVersionKind{Group: crd.Spec.Group, Version: version, Kind: kind},
		namespaced:            crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		preserveUnknownFields: crd.Spec.PreserveUnknownFields,
	}

	var props *apiextensions.JSONSchemaProps
	if spec.Schema != nil {
		internal := &apiextensions.CustomResourceValidation{}
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(spec.Schema.DeepCopy(), internal, nil); err != nil {
			return nil, fmt.Errorf("converting the schema of %s version %s: %w", crd.Name, version, err)
		}
		props = internal.OpenAPIV3Schema
	}
	if err := v.compileSchema(props); err != nil {
		return nil, fmt.Errorf("compiling the schema of %s version %s: %w", crd.Name, version, err)
	}

	if sub := spec.Subresources; sub != nil {
		if sub.Status != nil && props != nil {
			if status, ok := props.Properties["status"]; ok {
				validator, _, err := apiservervalidation.NewSchemaValidator(&status)
				if err != nil {
					return nil, fmt.Errorf("compiling the status schema of %s version %s: %w", crd.Name, version, err)
				}
				v.statusValidator = validator
			}
		}
		if sub.Scale != nil {
			v.scale = &apiextensions.CustomResourceSubresourceScale{
				SpecReplicasPath:   sub.Scale.SpecReplicasPath,
				StatusReplicasPath: sub.Scale.StatusReplicasPath,
				LabelSelectorPath:  sub.Scale.LabelSelectorPath,
			}
		}
	}

	v.columns = compileColumns(spec.AdditionalPrinterColumns)
	for _, f := range spec.SelectableFields {
		v.selectable = append(v.selectable, f.JSONPath)
	}
	return v, nil
}

// compileSchema builds the structural schema, the OpenAPI validator and the
// CEL validator as upstream's CRD handler does.
func (v *Version) compileSchema(props *apiextensions.JSONSchemaProps) error {
	validator, _, err := apiservervalidation.NewSchemaValidator(props)
	if err != nil {
		return err
	}
	v.validator = validator
	if props == nil {
		return nil
	}

	s, err := structuralschema.NewStructural(props)
	if err != nil {
		if v.preserveUnknownFields {
			return nil // served without pruning, defaulting or CEL, as upstream
		}
		return err
	}
	v.published = s
	// Defaults are not deep-copied by NewStructural; prune a private copy.
	v.structural = s.DeepCopy()
	if !v.preserveUnknownFields {
		if err := structuraldefaulting.PruneDefaults(v.structural); err != nil {
			return fmt.Errorf("pruning defaults: %w", err)
		}
	}
	v.celValidator = cel.NewValidator(v.structural, true, celconfig.PerCallLimit)
	return nil
}

// GroupVersionKind is the kind the version serves.
func (v *Version) GroupVersionKind() schema.GroupVersionKind { return v.gvk }

// Structural exposes the structural schema (nil if the version has none).
// Callers must not modify it.
func (v *Version) Structural() *structuralschema.Structural { return v.structural }
