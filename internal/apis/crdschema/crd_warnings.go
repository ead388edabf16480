package crdschema

import (
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// CRDWarnings are upstream's warnings on creating crd: formats the server
// does not recognise, and list-type sets of objects or arrays.
func CRDWarnings(crd *apiextensionsv1.CustomResourceDefinition) []string {
	internal, err := toInternal(crd)
	if err != nil {
		return nil
	}
	var warnings []string
	for _, f := range unrecognizedFormats(&internal.Spec) {
		warnings = append(warnings, fmt.Sprintf("unrecognized format %q", f))
	}
	return append(warnings, nonScalarSetWarnings(&internal.Spec)...)
}

// CRDWarningsOnUpdate are CRDWarnings about what the update introduces.
func CRDWarningsOnUpdate(crd, old *apiextensionsv1.CustomResourceDefinition) []string {
	internal, err := toInternal(crd)
	if err != nil {
		return nil
	}
	internalOld, err := toInternal(old)
	if err != nil {
		return nil
	}
	var warnings []string
	oldFormats := sets.New(unrecognizedFormats(&internalOld.Spec)...)
	for _, f := range unrecognizedFormats(&internal.Spec) {
		if !oldFormats.Has(f) {
			warnings = append(warnings, fmt.Sprintf("unrecognized format %q", f))
		}
	}
	oldSets := sets.New(nonScalarSetWarnings(&internalOld.Spec)...)
	for _, w := range nonScalarSetWarnings(&internal.Spec) {
		if !oldSets.Has(w) {
			warnings = append(warnings, w)
		}
	}
	return warnings
}

// schemasOf are the schemas of a CRD spec: the top-level one (set by the
// v1 conversion when all versions share a schema) and the per-version ones.
func schemasOf(s *apiextensions.CustomResourceDefinitionSpec) []*apiextensions.JSONSchemaProps {
	var out []*apiextensions.JSONSchemaProps
	if s.Validation != nil && s.Validation.OpenAPIV3Schema != nil {
		out = append(out, s.Validation.OpenAPIV3Schema)
	}
	for _, v := range s.Versions {
		if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
			out = append(out, v.Schema.OpenAPIV3Schema)
		}
	}
	return out
}

func unrecognizedFormats(s *apiextensions.CustomResourceDefinitionSpec) []string {
	compat := environment.DefaultCompatibilityVersion()
	var formats []string
	for _, schema := range schemasOf(s) {
		validation.SchemaHas(schema, func(p *apiextensions.JSONSchemaProps) bool {
			if p.Format != "" {
				probe := &spec.Schema{SchemaProps: spec.SchemaProps{Format: p.Format, Type: []string{p.Type}}}
				formats = append(formats, apiservervalidation.GetUnrecognizedFormats(probe, compat)...)
			}
			return false
		})
	}
	return formats
}

func nonScalarSetWarnings(s *apiextensions.CustomResourceDefinitionSpec) []string {
	warnings := sets.New[string]()
	for _, schema := range schemasOf(s) {
		validation.SchemaHas(schema, func(p *apiextensions.JSONSchemaProps) bool {
			if p.XListType == nil || *p.XListType != "set" || p.Items == nil || p.Items.Schema == nil {
				return false
			}
			if t := p.Items.Schema.Type; t == "object" || t == "array" {
				warnings.Insert(fmt.Sprintf("x-kubernetes-list-type: set for items of type %q is not supported by server-side apply or CEL validation rules", t))
			}
			return false
		})
	}
	return sets.List(warnings)
}
