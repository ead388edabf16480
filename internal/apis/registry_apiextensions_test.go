package apis

import (
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// The CRD kinds are not in client-go's scheme; the API server registers
// them in its own (codec.go). Do the same for the scheme checks here.
func init() {
	if err := apiextensionsv1.AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}

func TestCRDResourceAsUpstream(t *testing.T) {
	r := apiextensionsResources()[0]
	if r.Namespaced || r.Kind != "CustomResourceDefinition" || !r.HasSubresource("status") ||
		len(r.ShortNames) != 2 || r.ShortNames[0] != "crd" || r.Categories[0] != "api-extensions" {
		t.Fatalf("CRD resource = %+v", r)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	crd := &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "a.b.c", CreationTimestamp: metav1.NewTime(created)}}
	if len(r.TableColumns) != 1 || r.TableColumns[0].Name != "Created At" {
		t.Errorf("columns = %+v", r.TableColumns)
	}
	if row := r.TableRow(crd); len(row) != 1 || row[0] != "2026-01-02T03:04:05Z" {
		t.Errorf("row = %v", row)
	}
	// Validation is crdschema's: an empty spec is refused.
	if errs := r.Validate(&apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "x"}}); len(errs) == 0 {
		t.Error("an empty CRD passed validation")
	}
}
