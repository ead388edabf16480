package crdschema

import (
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func TestDefaultCRD(t *testing.T) {
	crd := loadCRD(t, widgetCRD)
	if crd.Spec.Conversion == nil || crd.Spec.Conversion.Strategy != apiextensionsv1.NoneConverter {
		t.Errorf("conversion = %+v, want strategy None", crd.Spec.Conversion)
	}
	if got := crd.Status.StoredVersions; len(got) != 1 || got[0] != "v1" {
		t.Errorf("storedVersions = %v, want [v1]", got)
	}
}

func TestValidateCRD(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string // empty: valid
	}{
		{name: "valid", edit: func(s string) string { return s }},
		{
			name: "name not plural.group",
			edit: func(s string) string {
				return strings.Replace(s, "name: widgets.example.com", "name: gadgets.example.com", 1)
			},
			wantErr: `metadata.name: Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group`,
		},
		{
			name:    "bad plural",
			edit:    func(s string) string { return strings.Replace(s, "plural: widgets,", "plural: Widgets_,", 1) },
			wantErr: `spec.names.plural: Invalid value: "Widgets_"`,
		},
		{
			name:    "no storage version",
			edit:    func(s string) string { return strings.Replace(s, "storage: true", "storage: false", 1) },
			wantErr: "spec.versions: Invalid value: ",
		},
		{
			name: "non-structural schema",
			edit: func(s string) string {
				return strings.Replace(s, "          spec:\n            type: object\n", "          spec:\n", 1)
			},
			wantErr: "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
		},
		{
			name: "invalid CEL rule",
			edit: func(s string) string {
				return strings.Replace(s, "self.minReplicas <= self.replicas", "self.nope > 1", 1)
			},
			wantErr: "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: ",
		},
		{
			name:    "default not matching schema",
			edit:    func(s string) string { return strings.Replace(s, "default: fast", "default: 3", 1) },
			wantErr: `spec.validation.openAPIV3Schema.properties[spec].properties[settings].properties[mode].default: Invalid value: "integer":  in body must be of type string: "integer"`,
		},
		{
			name: "bad printer column type",
			edit: func(s string) string {
				return strings.Replace(s, "{name: Ready, type: boolean", "{name: Ready, type: bool", 1)
			},
			wantErr: `spec.additionalPrinterColumns[3].type: Invalid value: "bool": must be one of boolean,date,integer,number,string`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crd := loadCRD(t, tt.edit(widgetCRD))
			errs := ValidateCRD(crd)
			if tt.wantErr == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errorStrings(errs))
				}
				return
			}
			if !hasError(errs, tt.wantErr) {
				t.Fatalf("errors %q lack %q", errorStrings(errs), tt.wantErr)
			}
		})
	}
}

func TestValidateCRDUpdate(t *testing.T) {
	old := loadCRD(t, widgetCRD)
	old.ResourceVersion = "1"

	crd := old.DeepCopy()
	crd.Spec.Group = "other.example.com"
	errs := ValidateCRDUpdate(crd, old)
	if !hasError(errs, `spec.group: Invalid value: "other.example.com": field is immutable`) {
		t.Errorf("changing group: errors %q lack the immutable group error", errorStrings(errs))
	}

	// Scope becomes immutable once the CRD is established.
	crd = old.DeepCopy()
	crd.Spec.Scope = apiextensionsv1.ClusterScoped
	if errs := ValidateCRDUpdate(crd, old); len(errs) > 0 {
		t.Errorf("changing scope before Established: unexpected errors %q", errorStrings(errs))
	}
	established := old.DeepCopy()
	established.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}
	crd.Status = established.Status
	errs = ValidateCRDUpdate(crd, established)
	if !hasError(errs, `spec.scope: Invalid value: "Cluster": field is immutable`) {
		t.Errorf("changing scope: errors %q lack the immutable scope error", errorStrings(errs))
	}

	crd = old.DeepCopy()
	crd.Spec.Versions[0].Served = false
	crd.Spec.Versions = append(crd.Spec.Versions, *crd.Spec.Versions[0].DeepCopy())
	crd.Spec.Versions[1].Name = "v2"
	crd.Spec.Versions[1].Served = true
	crd.Spec.Versions[1].Storage = false
	PrepareCRDForUpdate(crd, old)
	if errs := ValidateCRDUpdate(crd, old); len(errs) > 0 {
		t.Errorf("adding a version: unexpected errors %q", errorStrings(errs))
	}
	if crd.Generation != old.Generation+1 {
		t.Errorf("generation = %d, want %d", crd.Generation, old.Generation+1)
	}
}

func TestValidateCRDStatusUpdate(t *testing.T) {
	old := loadCRD(t, widgetCRD)
	old.ResourceVersion = "1"
	crd := old.DeepCopy()
	crd.Status.AcceptedNames = apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Kind: "Widget", ListKind: "WidgetList", Singular: "widget"}
	if errs := ValidateCRDStatusUpdate(crd, old); len(errs) > 0 {
		t.Errorf("unexpected errors %q", errorStrings(errs))
	}
	crd.Status.AcceptedNames.Plural = "Bad_Plural"
	if errs := ValidateCRDStatusUpdate(crd, old); !hasError(errs, `status.acceptedNames.plural: Invalid value: "Bad_Plural"`) {
		t.Errorf("errors %q lack the plural error", errorStrings(errs))
	}
}

func TestCRDWarnings(t *testing.T) {
	crd := loadCRD(t, strings.Replace(widgetCRD, "size: {type: string, pattern:", "size: {type: string, format: shoe-size, pattern:", 1))
	want := []string{`unrecognized format "shoe-size"`}
	if got := CRDWarnings(crd); !reflect.DeepEqual(got, want) {
		t.Errorf("CRDWarnings = %q, want %q", got, want)
	}
	if got := CRDWarningsOnUpdate(crd, crd); len(got) > 0 {
		t.Errorf("CRDWarningsOnUpdate with nothing new = %q", got)
	}
	if got := CRDWarnings(loadCRD(t, widgetCRD)); len(got) > 0 {
		t.Errorf("CRDWarnings of a clean CRD = %q", got)
	}
}
