package crdschema

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
)

// SelectableFields are the version's extra field-selector keys, as upstream
// names them: the selectableFields JSONPaths without the leading dot
// ("spec.color").
func (v *Version) SelectableFields() []string {
	names := make([]string, 0, len(v.selectable))
	for _, p := range v.selectable {
		names = append(names, strings.TrimPrefix(p, "."))
	}
	return names
}

// FieldSet returns obj's values for SelectableFields, formatted as upstream
// does (fmt.Sprint of the JSON value; "" when absent). metadata.name and
// metadata.namespace are not included: the caller adds them for every kind.
func (v *Version) FieldSet(obj map[string]any) fields.Set {
	if len(v.selectable) == 0 {
		return nil
	}
	set := make(fields.Set, len(v.selectable))
	for _, p := range v.selectable {
		set[strings.TrimPrefix(p, ".")] = selectableValue(obj, p)
	}
	return set
}

func selectableValue(obj map[string]any, path string) string {
	parser, err := parseJSONPath("selectableField", path)
	if err != nil {
		return ""
	}
	results, err := parser.FindResults(obj)
	// Selectable fields are scalars (CRD validation checks the schema), so
	// there is at most one result.
	if err != nil || len(results) == 0 || len(results[0]) != 1 {
		return ""
	}
	value := results[0][0].Interface()
	if value == nil {
		return ""
	}
	return fmt.Sprint(value)
}
