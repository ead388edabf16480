package crdschema

import (
	"strings"

	openapiv2 "k8s.io/apiextensions-apiserver/pkg/controller/openapi/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Where OpenAPI v3 and v2 documents define ObjectMeta.
const (
	objectMetaRefV3 = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
	objectMetaRefV2 = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)

var (
	typeMetaDescriptions = metav1.TypeMeta{}.SwaggerDoc()
	metadataDescription  = metav1beta1.PartialObjectMetadata{}.SwaggerDoc()["metadata"]
)

// Descriptions upstream's builder gives the type meta of embedded resources.
const (
	embeddedAPIVersionDescription = "apiVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
	embeddedKindDescription       = "kind is a string value representing the type of this object. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)

// OpenAPISchema is the version's schema as a kube-openapi spec.Schema in v3
// form, built as upstream's CRD OpenAPI builder does: the unfolded schema
// with apiVersion, kind and metadata (a reference to ObjectMeta) at the root
// and in embedded resources, plus x-kubernetes-group-version-kind and
// x-kubernetes-selectable-fields. Without a schema it is a plain object.
// Each call returns a new schema.
func (v *Version) OpenAPISchema() *spec.Schema {
	return v.openAPISchema(false)
}

// OpenAPISchemaV2 is OpenAPISchema in the form upstream publishes in
// /openapi/v2: converted with ToStructuralOpenAPIV2 (no nullable, oneOf and
// the like), metadata referencing #/definitions/..., and a bare object when
// the root preserves unknown fields. Upstream also prunes defaults from the
// v2 document (kube-openapi's handler.PruneDefaults); that is left to the
// document builder.
func (v *Version) OpenAPISchemaV2() *spec.Schema {
	return v.openAPISchema(true)
}

func (v *Version) openAPISchema(v2 bool) *spec.Schema {
	var s *spec.Schema
	switch {
	case v.published == nil, v2 && (v.published.XPreserveUnknownFields || v.preserveUnknownFields):
		// kubectl would refuse any field beyond the listed ones, so v2 lists none.
		s = &spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}}}
	default:
		structural := v.published.Unfold()
		ref := objectMetaRefV3
		if v2 {
			structural = openapiv2.ToStructuralOpenAPIV2(structural)
			ref = objectMetaRefV2
		}
		s = structural.ToKubeOpenAPI()
		s.SetProperty("metadata", *spec.RefSchema(ref).WithDescription(metadataDescription))
		s.SetProperty("apiVersion", stringProperty(typeMetaDescriptions["apiVersion"]))
		s.SetProperty("kind", stringProperty(typeMetaDescriptions["kind"]))
		addEmbeddedProperties(s, ref, v2)
	}
	s.AddExtension("x-kubernetes-group-version-kind", []any{
		map[string]any{"group": v.gvk.Group, "version": v.gvk.Version, "kind": v.gvk.Kind},
	})
	if len(v.selectable) > 0 {
		selectable := make([]any, 0, len(v.selectable))
		for _, p := range v.selectable {
			selectable = append(selectable, map[string]any{"fieldPath": strings.TrimPrefix(p, ".")})
		}
		s.AddExtension("x-kubernetes-selectable-fields", selectable)
	}
	return s
}

func stringProperty(description string) spec.Schema {
	return spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}, Description: description}}
}

// addEmbeddedProperties gives every x-kubernetes-embedded-resource object
// its apiVersion, kind and metadata properties, with kind and apiVersion
// required, as upstream's builder.
func addEmbeddedProperties(s *spec.Schema, metaRef string, v2 bool) {
	if s == nil {
		return
	}
	for k, p := range s.Properties {
		addEmbeddedProperties(&p, metaRef, v2)
		s.Properties[k] = p
	}
	if s.Items != nil {
		addEmbeddedProperties(s.Items.Schema, metaRef, v2)
	}
	if s.AdditionalProperties != nil {
		addEmbeddedProperties(s.AdditionalProperties.Schema, metaRef, v2)
	}
	if preserve, ok := s.Extensions.GetBool("x-kubernetes-preserve-unknown-fields"); ok && preserve && v2 {
		// Listing metadata would make kubectl refuse the unknown fields.
		return
	}
	if embedded, ok := s.Extensions.GetBool("x-kubernetes-embedded-resource"); !ok || !embedded {
		return
	}
	s.SetProperty("apiVersion", stringProperty(embeddedAPIVersionDescription))
	s.SetProperty("kind", stringProperty(embeddedKindDescription))
	s.SetProperty("metadata", *spec.RefSchema(metaRef).WithDescription(metadataDescription))
	for _, name := range []string{"kind", "apiVersion"} {
		if !contains(s.Required, name) {
			s.Required = append(s.Required, name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
