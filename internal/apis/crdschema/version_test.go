package crdschema

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
)

const widgetHeader = `
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: default
`

func TestCompileUnknownVersion(t *testing.T) {
	if _, err := Compile(loadCRD(t, widgetCRD), "v9"); err == nil {
		t.Fatal("Compile of a missing version succeeded")
	}
}

func TestPrune(t *testing.T) {
	v := compileWidget(t)
	obj := object(t, widgetHeader+`
  labels: {app: a}
  bogus: 1
spec:
  color: red
  unknown: x
  extra: {anything: {nested: true}}
  settings: {mode: slow, stale: 1}
  template:
    apiVersion: v1
    kind: Pod
    metadata: {name: inner, junk: 1}
    spec: {image: nginx, other: 2}
  tags: [a]
status: {replicas: 1, whatever: 2}
other: 3
`)
	got := v.Prune(obj)
	want := []string{
		"metadata.bogus",
		"other",
		"spec.settings.stale",
		"spec.template.metadata.junk",
		"spec.template.spec.other",
		"spec.unknown",
		"status.whatever",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pruned paths = %q, want %q", got, want)
	}
	wantObj := object(t, widgetHeader+`
  labels: {app: a}
spec:
  color: red
  extra: {anything: {nested: true}}
  settings: {mode: slow}
  template:
    apiVersion: v1
    kind: Pod
    metadata: {name: inner}
    spec: {image: nginx}
  tags: [a]
status: {replicas: 1}
`)
	if !reflect.DeepEqual(obj, wantObj) {
		t.Errorf("pruned object = %v\nwant %v", obj, wantObj)
	}
}

func TestPruneRequestMalformedMetadata(t *testing.T) {
	v := compileWidget(t)
	obj := object(t, widgetHeader+"  labels: {app: 1}\nspec: {color: red}\n")
	if _, err := v.PruneRequest(obj); err == nil {
		t.Error("PruneRequest accepted a non-string label")
	}
	obj = object(t, widgetHeader+"  labels: {app: 1}\nspec: {color: red}\n")
	v.Prune(obj)
	if _, ok := nestedMap(obj, "metadata")["labels"]; ok {
		t.Errorf("Prune kept malformed labels: %v", obj["metadata"])
	}
}

func TestDefault(t *testing.T) {
	v := compileWidget(t)
	obj := object(t, widgetHeader+"spec: {color: red, settings: {}}\n")
	v.Prune(obj)
	v.Default(obj)
	spec := nestedMap(obj, "spec")
	if spec["replicas"] != int64(1) || spec["minReplicas"] != int64(0) {
		t.Errorf("spec = %v, want replicas 1 and minReplicas 0 defaulted", spec)
	}
	if mode := nestedMap(spec, "settings")["mode"]; mode != "fast" {
		t.Errorf("settings.mode = %v, want fast", mode)
	}
	if _, ok := spec["size"]; ok {
		t.Error("a field without a default was set")
	}
}

func TestValidate(t *testing.T) {
	v := compileWidget(t)
	tests := []struct {
		name string
		body string
		want []string // substrings of the errors, as kube-apiserver prints them; nil: valid
	}{
		{name: "valid", body: "spec: {color: red, replicas: 2, minReplicas: 1, size: 10Mi, port: http, tags: [a, b]}"},
		{name: "int-or-string integer", body: "spec: {color: red, replicas: 1, minReplicas: 0, port: 80}"},
		{name: "enum", body: "spec: {color: pink, replicas: 1, minReplicas: 0}", want: []string{
			`spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"`,
		}},
		{name: "pattern", body: "spec: {color: red, replicas: 1, minReplicas: 0, size: big}", want: []string{
			`spec.size: Invalid value: "big": spec.size in body should match '^[0-9]+(Mi|Gi)$'`,
		}},
		{name: "minimum", body: "spec: {color: red, replicas: -1, minReplicas: -2}", want: []string{
			`spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0`,
		}},
		{name: "required", body: "spec: {replicas: 1, minReplicas: 0}", want: []string{
			`spec.color: Required value`,
			"some validation rules were not checked because the object was invalid",
		}},
		{name: "wrong type", body: "spec: {color: red, replicas: one, minReplicas: 0}", want: []string{
			`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`,
		}},
		{name: "int-or-string bool", body: "spec: {color: red, replicas: 1, minReplicas: 0, port: true}", want: []string{
			`spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"`,
		}},
		{name: "CEL rule", body: "spec: {color: red, replicas: 1, minReplicas: 3}", want: []string{
			`spec: Invalid value: replicas must be at least minReplicas`,
		}},
		{name: "set duplicates", body: "spec: {color: red, replicas: 1, minReplicas: 0, tags: [a, a]}", want: []string{
			`spec.tags[1]: Duplicate value: "a"`,
		}},
		{name: "embedded metadata", body: "spec: {color: red, replicas: 1, minReplicas: 0, template: {apiVersion: v1, kind: Pod, metadata: {name: a/b}}}", want: []string{
			`spec.template.metadata.name: Invalid value: "a/b": may not contain '/'`,
		}},
		{name: "embedded kind required", body: "spec: {color: red, replicas: 1, minReplicas: 0, template: {apiVersion: v1}}", want: []string{
			`spec.template.kind: Required value`,
		}},
		{name: "scale replicas", body: "spec: {color: red, replicas: 1, minReplicas: 0}\nstatus: {replicas: -1}", want: []string{
			`.status.replicas: Invalid value: -1: should be a non-negative integer`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := v.Validate(context.Background(), object(t, widgetHeader+tt.body))
			if tt.want == nil {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors %q", errorStrings(errs))
				}
				return
			}
			for _, w := range tt.want {
				if !hasError(errs, w) {
					t.Errorf("errors %q lack %q", errorStrings(errs), w)
				}
			}
		})
	}
}

func TestValidateTypeMeta(t *testing.T) {
	v := compileWidget(t)
	obj := object(t, "apiVersion: example.com/v2\nkind: Gadget\nmetadata: {name: w}\nspec: {color: red, replicas: 1, minReplicas: 0}\n")
	errs := v.Validate(context.Background(), obj)
	for _, w := range []string{`kind: Invalid value: "Gadget": must be Widget`, `apiVersion: Invalid value: "example.com/v2": must be example.com/v1`} {
		if !hasError(errs, w) {
			t.Errorf("errors %q lack %q", errorStrings(errs), w)
		}
	}
}

func TestValidateUpdate(t *testing.T) {
	v := compileWidget(t)
	ctx := context.Background()
	old := object(t, widgetHeader+"spec: {color: red, replicas: 1, minReplicas: 0, size: big}\n")

	// Transition rule: color may not change.
	obj := object(t, widgetHeader+"spec: {color: blue, replicas: 1, minReplicas: 0, size: big}\n")
	if errs := v.ValidateUpdate(ctx, obj, old); !hasError(errs, `spec: Invalid value: color is immutable`) {
		t.Errorf("changing color: errors %q lack the transition rule message", errorStrings(errs))
	}

	// Ratcheting: the invalid size was already stored and is unchanged.
	obj = object(t, widgetHeader+"spec: {color: red, replicas: 2, minReplicas: 0, size: big}\n")
	if errs := v.ValidateUpdate(ctx, obj, old); len(errs) > 0 {
		t.Errorf("unchanged invalid value: unexpected errors %q", errorStrings(errs))
	}
	// ...but changing it to another invalid value is refused.
	obj = object(t, widgetHeader+"spec: {color: red, replicas: 2, minReplicas: 0, size: huge}\n")
	if errs := v.ValidateUpdate(ctx, obj, old); !hasError(errs, `spec.size: Invalid value: "huge"`) {
		t.Errorf("changed invalid value: errors %q lack the pattern error", errorStrings(errs))
	}

	// Set duplicates already stored are ratcheted too.
	oldDup := object(t, widgetHeader+"spec: {color: red, replicas: 1, minReplicas: 0, tags: [a, a]}\n")
	newDup := object(t, widgetHeader+"spec: {color: red, replicas: 2, minReplicas: 0, tags: [a, a]}\n")
	if errs := v.ValidateUpdate(ctx, newDup, oldDup); len(errs) > 0 {
		t.Errorf("stored duplicates: unexpected errors %q", errorStrings(errs))
	}
	if errs := v.ValidateUpdate(ctx, newDup, old); !hasError(errs, `spec.tags[1]: Duplicate value: "a"`) {
		t.Errorf("new duplicates: errors %q lack the duplicate error", errorStrings(errs))
	}
}

func TestValidateStatusUpdate(t *testing.T) {
	v := compileWidget(t)
	ctx := context.Background()
	old := object(t, widgetHeader+"spec: {color: red, replicas: 1, minReplicas: 0}\n")
	obj := object(t, widgetHeader+"spec: {color: red, replicas: 1, minReplicas: 0}\nstatus: {replicas: 1, ready: true}\n")
	if errs := v.ValidateStatusUpdate(ctx, obj, old); len(errs) > 0 {
		t.Errorf("unexpected errors %q", errorStrings(errs))
	}
	obj = object(t, widgetHeader+"spec: {color: red, replicas: 1, minReplicas: 0}\nstatus: {replicas: 1, ready: 'no'}\n")
	if errs := v.ValidateStatusUpdate(ctx, obj, old); !hasError(errs, `status.ready: Invalid value: "string": ready in body must be of type boolean: "string"`) {
		t.Errorf("errors %q lack the status type error", errorStrings(errs))
	}
}

func TestTable(t *testing.T) {
	v := compileWidget(t)
	cols := v.TableColumns()
	var names []string
	for _, c := range cols {
		names = append(names, c.Name)
	}
	if want := []string{"Name", "Replicas", "Color", "Started", "Ready"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("columns = %q, want %q", names, want)
	}
	if cols[0].Format != "name" || cols[2].Priority != 1 || cols[3].Type != "date" {
		t.Errorf("column definitions = %+v", cols)
	}
	if want := "Custom resource definition column (in JSONPath format): .spec.replicas"; cols[1].Description != want {
		t.Errorf("description = %q, want %q", cols[1].Description, want)
	}

	started := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	obj := object(t, widgetHeader+"spec: {color: red, replicas: 3}\nstatus: {startTime: '"+started+"'}\n")
	row := v.TableRow(obj)
	want := []any{"w1", int64(3), "red", "120m", nil}
	if !reflect.DeepEqual(row, want) {
		t.Errorf("row = %#v, want %#v", row, want)
	}
}

func TestTableDefaultColumns(t *testing.T) {
	crd := loadCRD(t, widgetCRD)
	crd.Spec.Versions[0].AdditionalPrinterColumns = nil
	v, err := Compile(crd, "v1")
	if err != nil {
		t.Fatal(err)
	}
	cols := v.TableColumns()
	if len(cols) != 2 || cols[0].Name != "Name" || cols[1].Name != "Age" || cols[1].Type != "date" {
		t.Fatalf("columns = %+v, want Name and Age", cols)
	}
	created := metav1.NewTime(time.Now().Add(-3 * 24 * time.Hour)).UTC().Format(time.RFC3339)
	obj := object(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2, creationTimestamp: '"+created+"'}\n")
	if row := v.TableRow(obj); !reflect.DeepEqual(row, []any{"w2", "3d"}) {
		t.Errorf("row = %#v, want [w2 3d]", row)
	}
}

func TestSelectableFields(t *testing.T) {
	v := compileWidget(t)
	if got, want := v.SelectableFields(), []string{"spec.color", "spec.replicas"}; !reflect.DeepEqual(got, want) {
		t.Errorf("SelectableFields = %q, want %q", got, want)
	}
	got := v.FieldSet(object(t, widgetHeader+"spec: {color: red, replicas: 3}\n"))
	if want := (fields.Set{"spec.color": "red", "spec.replicas": "3"}); !reflect.DeepEqual(got, want) {
		t.Errorf("FieldSet = %v, want %v", got, want)
	}
	got = v.FieldSet(object(t, widgetHeader+"spec: {}\n"))
	if want := (fields.Set{"spec.color": "", "spec.replicas": ""}); !reflect.DeepEqual(got, want) {
		t.Errorf("FieldSet of missing values = %v, want %v", got, want)
	}
}

func TestOpenAPISchema(t *testing.T) {
	v := compileWidget(t)
	s := v.OpenAPISchema()
	meta := s.Properties["metadata"]
	if got := meta.Ref.String(); got != "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("metadata ref = %q", got)
	}
	for _, p := range []string{"apiVersion", "kind"} {
		if typ := s.Properties[p].Type; len(typ) != 1 || typ[0] != "string" {
			t.Errorf("%s type = %v, want string", p, typ)
		}
	}
	template := s.Properties["spec"].Properties["template"]
	if _, ok := template.Properties["metadata"]; !ok || !strings.Contains(strings.Join(template.Required, ","), "kind") {
		t.Errorf("embedded resource lacks metadata/required kind: %+v", template.SchemaProps)
	}
	if got := s.Properties["spec"].Properties["replicas"].Default; got == nil {
		t.Error("defaults missing from the published schema")
	}
	gvk, ok := s.Extensions["x-kubernetes-group-version-kind"].([]any)
	if !ok || len(gvk) != 1 || !reflect.DeepEqual(gvk[0], map[string]any{"group": "example.com", "version": "v1", "kind": "Widget"}) {
		t.Errorf("x-kubernetes-group-version-kind = %#v", s.Extensions["x-kubernetes-group-version-kind"])
	}
}

func TestWarnings(t *testing.T) {
	v := compileWidget(t)
	ctx := context.Background()
	obj := object(t, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, finalizers: [example.com/x, cleanup, kubernetes]}\n")
	want := []string{`metadata.finalizers: "cleanup": prefer a domain-qualified finalizer name to avoid accidental conflicts with other finalizer writers`}
	if got := v.Warnings(ctx, obj); !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings = %q, want %q", got, want)
	}
	if got := v.WarningsOnUpdate(ctx, obj, obj); got != nil {
		t.Errorf("WarningsOnUpdate with no new finalizers = %q, want none", got)
	}
}

func TestOpenAPISchemaV2AndSelectableFields(t *testing.T) {
	v := compileWidget(t)
	s := v.OpenAPISchemaV2()
	meta := s.Properties["metadata"]
	if got := meta.Ref.String(); got != "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" {
		t.Errorf("v2 metadata ref = %q", got)
	}
	want := []any{map[string]any{"fieldPath": "spec.color"}, map[string]any{"fieldPath": "spec.replicas"}}
	if got := s.Extensions["x-kubernetes-selectable-fields"]; !reflect.DeepEqual(got, want) {
		t.Errorf("x-kubernetes-selectable-fields = %#v, want %#v", got, want)
	}
}

const preserveCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: blobs.example.com}
spec:
  group: example.com
  names: {plural: blobs, kind: Blob}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

func TestPreserveUnknownFieldsAtRoot(t *testing.T) {
	crd := loadCRD(t, preserveCRD)
	if errs := ValidateCRD(crd); len(errs) > 0 {
		t.Fatalf("unexpected errors %q", errorStrings(errs))
	}
	v, err := Compile(crd, "v1")
	if err != nil {
		t.Fatal(err)
	}
	obj := object(t, "apiVersion: example.com/v1\nkind: Blob\nmetadata: {name: b}\nanything: {goes: [1, 2]}\n")
	if pruned := v.Prune(obj); len(pruned) > 0 {
		t.Errorf("pruned %q from a preserve-unknown-fields object", pruned)
	}
	if _, ok := obj["anything"]; !ok {
		t.Error("unknown field removed")
	}
	if errs := v.Validate(context.Background(), obj); len(errs) > 0 {
		t.Errorf("unexpected errors %q", errorStrings(errs))
	}
	if s := v.OpenAPISchemaV2(); len(s.Properties) > 0 {
		t.Errorf("v2 schema of a preserve-unknown-fields root has properties %v", s.Properties)
	}
}

// TestConcurrentUse runs the per-object calls in parallel so the race
// detector can see a Version is safe to share between requests.
func TestConcurrentUse(t *testing.T) {
	v := compileWidget(t)
	template := object(t, widgetHeader+"spec: {color: red, replicas: 1, tags: [a, a]}\nstatus: {startTime: '2020-01-01T00:00:00Z'}\n")
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 20 {
				obj := runtime.DeepCopyJSON(template)
				v.Prune(obj)
				v.Default(obj)
				v.Validate(context.Background(), obj)
				v.ValidateUpdate(context.Background(), obj, obj)
				v.TableRow(obj)
				v.FieldSet(obj)
			}
		}()
	}
	for range 8 {
		<-done
	}
}
