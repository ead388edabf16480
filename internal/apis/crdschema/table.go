package crdschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metatable "k8s.io/apimachinery/pkg/api/meta/table"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/jsonpath"
)

var objectMetaDescriptions = metav1.ObjectMeta{}.SwaggerDoc()

// column is one additional printer column: its definition and JSONPath.
type column struct {
	def      metav1.TableColumnDefinition
	jsonPath string
}

// compileColumns turns additionalPrinterColumns into table columns. Without
// any, upstream serves an Age column on .metadata.creationTimestamp. Like
// upstream, a column whose JSONPath does not parse ends the list (CRD
// validation refuses such paths, so this only guards old objects).
func compileColumns(crdColumns []apiextensionsv1.CustomResourceColumnDefinition) []column {
	if len(crdColumns) == 0 {
		crdColumns = []apiextensionsv1.CustomResourceColumnDefinition{{
			Name:        "Age",
			Type:        "date",
			Description: objectMetaDescriptions["creationTimestamp"],
			JSONPath:    ".metadata.creationTimestamp",
		}}
	}
	var cols []column
	for _, c := range crdColumns {
		if _, err := parseJSONPath(c.Name, c.JSONPath); err != nil {
			slog.Warn("invalid printer column, ignoring it and the ones after it", "column", c.Name, "jsonPath", c.JSONPath, "err", err)
			break
		}
		desc := c.Description
		if desc == "" {
			desc = fmt.Sprintf("Custom resource definition column (in JSONPath format): %s", c.JSONPath)
		}
		cols = append(cols, column{
			def: metav1.TableColumnDefinition{
				Name:        c.Name,
				Type:        c.Type,
				Format:      c.Format,
				Description: desc,
				Priority:    c.Priority,
			},
			jsonPath: c.JSONPath,
		})
	}
	return cols
}

func parseJSONPath(name, path string) (*jsonpath.JSONPath, error) {
	p := jsonpath.New(name)
	if err := p.Parse("{" + path + "}"); err != nil {
		return nil, err
	}
	p.AllowMissingKeys(true)
	return p, nil
}

// TableColumns are upstream's columns for the version: Name first, then the
// additionalPrinterColumns (or Age when there are none).
func (v *Version) TableColumns() []metav1.TableColumnDefinition {
	defs := make([]metav1.TableColumnDefinition, 0, 1+len(v.columns))
	defs = append(defs, metav1.TableColumnDefinition{
		Name: "Name", Type: "string", Format: "name", Description: objectMetaDescriptions["name"],
	})
	for _, c := range v.columns {
		defs = append(defs, c.def)
	}
	return defs
}

// TableRow evaluates the cells of TableColumns for obj, Name first. A path
// that finds nothing gives a nil cell; string columns print the value as
// kubectl's JSONPath would, typed columns keep the JSON type and date
// columns show the age ("5m"), as upstream.
func (v *Version) TableRow(obj map[string]any) []any {
	name, _ := nestedMap(obj, "metadata")["name"].(string)
	cells := make([]any, 1, 1+len(v.columns))
	cells[0] = name
	var buf bytes.Buffer
	for _, c := range v.columns {
		// JSONPath keeps state while evaluating; parse per row so rows can
		// be printed concurrently.
		path, err := parseJSONPath(c.def.Name, c.jsonPath)
		if err != nil {
			cells = append(cells, nil)
			continue
		}
		results, err := path.FindResults(obj)
		if err != nil || len(results) == 0 || len(results[0]) == 0 {
			cells = append(cells, nil)
			continue
		}
		value := results[0][0].Interface()
		if c.def.Type != "string" {
			cells = append(cells, cellForJSONValue(c.def.Type, value))
			continue
		}
		if err := path.PrintResults(&buf, []reflect.Value{reflect.ValueOf(value)}); err != nil {
			cells = append(cells, nil)
			continue
		}
		cells = append(cells, buf.String())
		buf.Reset()
	}
	return cells
}

func nestedMap(obj map[string]any, key string) map[string]any {
	m, _ := obj[key].(map[string]any)
	return m
}

// cellForJSONValue converts a value found by a column's path to the
// column's type; a value of another type gives nil, as upstream.
func cellForJSONValue(columnType string, value any) any {
	switch columnType {
	case "integer":
		switch typed := value.(type) {
		case int64:
			return typed
		case int:
			return int64(typed)
		case float64:
			return int64(typed)
		case json.Number:
			if i, err := typed.Int64(); err == nil {
				return i
			}
		}
	case "number":
		switch typed := value.(type) {
		case int64:
			return float64(typed)
		case int:
			return float64(typed)
		case float64:
			return typed
		case json.Number:
			if f, err := typed.Float64(); err == nil {
				return f
			}
		}
	case "boolean":
		if b, ok := value.(bool); ok {
			return b
		}
	case "date":
		if s, ok := value.(string); ok {
			var t metav1.Time
			if err := t.UnmarshalQueryParameter(s); err != nil {
				return "<invalid>"
			}
			return metatable.ConvertToHumanReadableDateType(t)
		}
	}
	return nil
}
