package crdschema

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// widgetCRD is a valid CRD exercising the schema features the tests use.
const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
    - {name: Started, type: date, jsonPath: .status.startTime}
    - {name: Ready, type: boolean, jsonPath: .status.ready}
    selectableFields:
    - jsonPath: .spec.color
    - jsonPath: .spec.replicas
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.replicas"
              message: "replicas must be at least minReplicas"
            - rule: "self.color == oldSelf.color"
              message: "color is immutable"
            properties:
              color: {type: string, enum: [red, green, blue]}
              replicas: {type: integer, minimum: 0, default: 1}
              minReplicas: {type: integer, default: 0}
              size: {type: string, pattern: "^[0-9]+(Mi|Gi)$"}
              port: {x-kubernetes-int-or-string: true}
              tags:
                type: array
                x-kubernetes-list-type: set
                items: {type: string}
              extra:
                type: object
                x-kubernetes-preserve-unknown-fields: true
              template:
                type: object
                x-kubernetes-embedded-resource: true
                properties:
                  spec: {type: object, properties: {image: {type: string}}}
              settings:
                type: object
                properties:
                  mode: {type: string, default: fast}
          status:
            type: object
            properties:
              replicas: {type: integer}
              ready: {type: boolean}
              startTime: {type: string, format: date-time}
`

func loadCRD(t *testing.T, doc string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict([]byte(doc), crd); err != nil {
		t.Fatalf("decoding CRD: %v", err)
	}
	DefaultCRD(crd)
	PrepareCRDForCreate(crd)
	return crd
}

func compileWidget(t *testing.T) *Version {
	t.Helper()
	v, err := Compile(loadCRD(t, widgetCRD), "v1")
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return v
}

// object decodes a YAML custom object as the API server's JSON decoder would
// (integers as int64).
func object(t *testing.T, doc string) map[string]any {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatalf("decoding object: %v", err)
	}
	return normalize(obj).(map[string]any)
}

// normalize turns the float64 numbers encoding/json produces into int64
// where they are whole, as apimachinery's unstructured JSON decoding does.
func normalize(x any) any {
	switch v := x.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
	}
	return x
}

// errorStrings renders errors as kube-apiserver prints them in a Status.
func errorStrings(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func hasError(errs field.ErrorList, want string) bool {
	for _, e := range errs {
		if strings.Contains(e.Error(), want) {
			return true
		}
	}
	return false
}
