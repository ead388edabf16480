package openapi

import (
	"encoding/json"
	"slices"
	"strings"

	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// The schemas of custom kinds follow upstream's apiextensions builder: the
// CRD's schema with apiVersion, kind and metadata set (also on every
// x-kubernetes-embedded-resource), the GVK extension, and for v2 what
// kubectl's v2 parser copes with.

const (
	objectMetaDef = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
	listMetaDef   = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
	typeMetaDef   = "io.k8s.apimachinery.pkg.apis.meta.v1.TypeMeta"

	extPreserveUnknown = "x-kubernetes-preserve-unknown-fields"
	extEmbedded        = "x-kubernetes-embedded-resource"
	extIntOrString     = "x-kubernetes-int-or-string"
	extGVK             = "x-kubernetes-group-version-kind"

	embeddedAPIVersionDesc = "apiVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
	embeddedKindDesc       = "kind is a string value representing the type of this object. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)

var (
	objectMetadataDesc = metav1beta1.PartialObjectMetadata{}.SwaggerDoc()["metadata"]
	listMetadataDesc   = metav1beta1.PartialObjectMetadataList{}.SwaggerDoc()["metadata"]
)

// typeMeta holds the apiVersion and kind properties as TypeMeta defines them.
type typeMeta struct{ apiVersion, kind spec.Schema }

func (s *Service) typeMetaProps() typeMeta {
	props := s.defs[typeMetaDef].Schema.Properties
	tm := typeMeta{apiVersion: props["apiVersion"], kind: props["kind"]}
	if tm.apiVersion.Type == nil {
		tm.apiVersion = *spec.StringProperty()
	}
	if tm.kind.Type == nil {
		tm.kind = *spec.StringProperty()
	}
	return tm
}

// metaRef is a property referencing a meta definition, with a description:
// v2 puts both in one schema, v3 wraps the reference in allOf.
func metaRef(def, desc string, v2 bool) spec.Schema {
	if v2 {
		return *spec.RefSchema("#/definitions/" + def).WithDescription(desc)
	}
	return spec.Schema{SchemaProps: spec.SchemaProps{Description: desc, AllOf: []spec.Schema{*spec.RefSchema("#/components/schemas/" + def)}}}
}

func (cr CustomResource) gvkExtension(kind string) []any {
	return []any{map[string]any{"group": cr.GVR.Group, "version": cr.GVR.Version, "kind": kind}}
}

// schemaV3 is the kind's schema in the v3 documents.
func (cr CustomResource) schemaV3(tm typeMeta) spec.Schema {
	if cr.Schema == nil {
		return cr.emptySchema()
	}
	sc := copySchema(cr.Schema, false)
	unfoldIntOrString(&sc)
	sc.SetProperty("metadata", metaRef(objectMetaDef, objectMetadataDesc, false))
	sc.SetProperty("apiVersion", tm.apiVersion)
	sc.SetProperty("kind", tm.kind)
	addEmbeddedMeta(&sc, tm, false)
	sc.AddExtension(extGVK, cr.gvkExtension(cr.Kind))
	return sc
}

// schemaV2 is the kind's schema in the v2 document: no junctors, no
// nullable, no defaults, and nothing but the extension where unknown
// fields are kept, since kubectl would reject fields the schema lacks.
func (cr CustomResource) schemaV2(tm typeMeta) spec.Schema {
	if cr.Schema == nil || isTrue(cr.Schema, extPreserveUnknown) {
		return cr.emptySchema()
	}
	sc := copySchema(cr.Schema, true)
	toV2(&sc)
	sc.SetProperty("metadata", metaRef(objectMetaDef, objectMetadataDesc, true))
	sc.SetProperty("apiVersion", tm.apiVersion)
	sc.SetProperty("kind", tm.kind)
	addEmbeddedMeta(&sc, tm, true)
	sc.AddExtension(extGVK, cr.gvkExtension(cr.Kind))
	return *handler.PruneDefaultsSchema(&sc)
}

// emptySchema is what upstream publishes for a kind without a usable
// schema: any object.
func (cr CustomResource) emptySchema() spec.Schema {
	sc := spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}
	sc.AddExtension(extGVK, cr.gvkExtension(cr.Kind))
	return sc
}

// listSchema is the schema of the kind's list.
func (cr CustomResource) listSchema(v2 bool, tm typeMeta) spec.Schema {
	itemRef := "#/components/schemas/" + cr.definitionName()
	if v2 {
		itemRef = "#/definitions/" + cr.definitionName()
	}
	sc := spec.Schema{SchemaProps: spec.SchemaProps{
		Description: cr.listKind() + " is a list of " + cr.Kind,
		Type:        spec.StringOrArray{"object"},
		Required:    []string{"items"},
		Properties: map[string]spec.Schema{
			"apiVersion": tm.apiVersion,
			"kind":       tm.kind,
			"metadata":   metaRef(listMetaDef, listMetadataDesc, v2),
			"items": *spec.ArrayProperty(spec.RefSchema(itemRef)).
				WithDescription("List of " + cr.GVR.Resource + ". More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"),
		},
	}}
	sc.AddExtension(extGVK, cr.gvkExtension(cr.listKind()))
	return sc
}

// copySchema deep-copies in, pointing its references into the v2
// definitions or the v3 components.
func copySchema(in *spec.Schema, v2 bool) spec.Schema {
	raw, err := json.Marshal(in)
	if err != nil {
		// Only schemas that never came from JSON fail to encode.
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}
	}
	from, to := `"#/definitions/`, `"#/components/schemas/`
	if v2 {
		from, to = to, from
	}
	raw = []byte(strings.ReplaceAll(string(raw), from, to))
	var out spec.Schema
	if err := json.Unmarshal(raw, &out); err != nil {
		return spec.Schema{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"object"}}}
	}
	return out
}

func isTrue(s *spec.Schema, ext string) bool {
	v, ok := s.Extensions.GetBool(ext)
	return ok && v
}

// children calls fn on the schemas nested under properties, items and
// additionalProperties, storing back what fn changed.
func children(s *spec.Schema, fn func(*spec.Schema)) {
	for name, p := range s.Properties {
		fn(&p)
		s.Properties[name] = p
	}
	if s.Items != nil && s.Items.Schema != nil {
		fn(s.Items.Schema)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		fn(s.AdditionalProperties.Schema)
	}
}

// addEmbeddedMeta gives every embedded resource apiVersion, kind and
// metadata, required kind and apiVersion, except in v2 where unknown
// fields are kept (kubectl would then refuse the unknown ones).
func addEmbeddedMeta(s *spec.Schema, tm typeMeta, v2 bool) {
	children(s, func(c *spec.Schema) { addEmbeddedMeta(c, tm, v2) })
	if !isTrue(s, extEmbedded) {
		return
	}
	if v2 && isTrue(s, extPreserveUnknown) {
		s.Required = slices.DeleteFunc(s.Required, func(f string) bool { return f == "kind" || f == "apiVersion" })
		if len(s.Required) == 0 {
			s.Required = nil
		}
		return
	}
	s.SetProperty("apiVersion", *withDescription(tm.apiVersion, embeddedAPIVersionDesc))
	s.SetProperty("kind", *withDescription(tm.kind, embeddedKindDesc))
	s.SetProperty("metadata", metaRef(objectMetaDef, objectMetadataDesc, v2))
	for _, f := range []string{"kind", "apiVersion"} {
		if !slices.Contains(s.Required, f) {
			s.Required = append(s.Required, f)
		}
	}
}

func withDescription(s spec.Schema, desc string) *spec.Schema { return s.WithDescription(desc) }

// toV2 removes what OpenAPI v2 or kubectl's reading of it cannot express,
// as upstream's conversion of CRD schemas to v2 does.
func toV2(s *spec.Schema) {
	s.AllOf, s.AnyOf, s.OneOf, s.Not = nil, nil, nil, nil
	if s.Nullable {
		// An untyped schema accepts null; kubectl cannot type-check
		// members of an untyped value.
		s.Type, s.Nullable, s.Items, s.Properties = nil, false, nil, nil
	}
	preserve := isTrue(s, extPreserveUnknown)
	if preserve {
		s.Items, s.Properties = nil, nil
	}
	if s.Items == nil && s.Type.Contains("array") {
		s.Type = nil
	}
	if preserve && s.Type.Contains("object") {
		s.Type = nil
	}
	for name, p := range s.Properties {
		if p.Nullable {
			s.Required = slices.DeleteFunc(s.Required, func(f string) bool { return f == name })
		}
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil && s.AdditionalProperties.Schema.Nullable {
		s.Required = nil
	}
	if len(s.Required) == 0 {
		s.Required = nil
	}
	children(s, toV2)
}

// unfoldIntOrString spells x-kubernetes-int-or-string out as anyOf
// integer or string, as upstream publishes it in v3.
func unfoldIntOrString(s *spec.Schema) {
	children(s, unfoldIntOrString)
	if !isTrue(s, extIntOrString) || isIntOrStringAnyOf(s.AnyOf) || (len(s.AllOf) > 0 && isIntOrStringAnyOf(s.AllOf[0].AnyOf)) {
		return
	}
	intOrString := []spec.Schema{{SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"integer"}}}, {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}}}}
	if len(s.AnyOf) == 0 {
		s.AnyOf = intOrString
		return
	}
	s.AllOf = append([]spec.Schema{{SchemaProps: spec.SchemaProps{AnyOf: intOrString}}}, s.AllOf...)
}

func isIntOrStringAnyOf(anyOf []spec.Schema) bool {
	return len(anyOf) == 2 && anyOf[0].Type.Contains("integer") && anyOf[1].Type.Contains("string")
}
