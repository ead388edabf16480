package apiserver

import (
	"sync/atomic"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apis/crdschema"
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
)

type openAPIRecorder struct{ got []openapi.CustomResource }

func (r *openAPIRecorder) SetCustomResources(crs []openapi.CustomResource) { r.got = crs }

func TestServedCustomResourcesArePublishedToOpenAPI(t *testing.T) {
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gizmos.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.ClusterScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gizmos", Singular: "gizmo", Kind: "Gizmo", ListKind: "GizmoList", ShortNames: []string{"gz"}},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {Type: "object"}},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
	crd.Status.AcceptedNames = crd.Spec.Names
	compiled, err := crdschema.Compile(crd, "v1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCodecs()
	if err != nil {
		t.Fatal(err)
	}
	rec := &openAPIRecorder{}
	s := &Server{cfg: Config{CustomResourceOpenAPI: rec}}
	r := newCustomResource(crd, &crd.Spec.Versions[0], compiled, nil, c, 0, &atomic.Bool{}, nil)
	s.publishOpenAPI([]*resource{r})
	if len(rec.got) != 1 {
		t.Fatalf("published %d resources", len(rec.got))
	}
	got := rec.got[0]
	if got.GVR != r.GVR || got.Kind != "Gizmo" || got.ListKind != "GizmoList" || got.Namespaced ||
		len(got.Subresources) != 1 || got.Subresources[0] != "status" || got.Schema == nil || got.ShortNames[0] != "gz" {
		t.Errorf("published %+v", got)
	}
}
