package apiserver

import (
	"mime"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/apis"
)

var nameColumn = metav1.TableColumnDefinition{
	Name: "Name", Type: "string", Format: "name",
	Description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.",
}

var ageColumn = metav1.TableColumnDefinition{
	Name: "Age", Type: "string",
	Description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
}

// table renders objs as a meta.k8s.io/v1 Table with the kind's columns.
func (q *request) table(objs []runtime.Object, rv, includeObject string) (*metav1.Table, error) {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"}}
	t.ResourceVersion = rv
	t.ColumnDefinitions = append(t.ColumnDefinitions, nameColumn)
	var crColumns bool
	if q.res.custom != nil {
		if cols := q.res.custom.schema.TableColumns(); len(cols) > 0 {
			// The CRD's columns (additionalPrinterColumns), Name first.
			t.ColumnDefinitions, crColumns = cols, true
		}
	}
	custom := q.res.TableRow != nil
	switch {
	case crColumns:
	case custom:
		t.ColumnDefinitions = append(t.ColumnDefinitions, q.res.TableColumns...)
	default:
		t.ColumnDefinitions = append(t.ColumnDefinitions, ageColumn)
	}
	now := time.Now()
	t.Rows = make([]metav1.TableRow, 0, len(objs))
	for _, obj := range objs {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		row := metav1.TableRow{Cells: make([]any, 0, len(t.ColumnDefinitions))}
		u, isUnstructured := obj.(*unstructured.Unstructured)
		switch {
		case crColumns && isUnstructured:
			row.Cells = q.res.custom.schema.TableRow(u.Object) // Name included
		case custom:
			row.Cells = append(row.Cells, m.GetName())
			row.Cells = append(row.Cells, q.res.TableRow(obj)...)
		default:
			row.Cells = append(row.Cells, m.GetName(), apis.HumanAge(m.GetCreationTimestamp().Time, now))
		}
		switch includeObject {
		case "None":
		case "Object":
			b, err := q.encodeJSON(obj)
			if err != nil {
				return nil, err
			}
			row.Object.Raw = b
		default:
			b, err := q.encodeJSON(partialMetadata(obj))
			if err != nil {
				return nil, err
			}
			row.Object.Raw = b
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// partialMetadata returns the metadata-only view of obj.
func partialMetadata(obj runtime.Object) *metav1.PartialObjectMetadata {
	p := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
		ObjectMeta: objectMetaOf(obj),
	}
	return p
}

func partialMetadataList(objs []runtime.Object, rv, cont string, remaining *int64) *metav1.PartialObjectMetadataList {
	l := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadataList"}}
	l.ResourceVersion, l.Continue, l.RemainingItemCount = rv, cont, remaining
	l.Items = make([]metav1.PartialObjectMetadata, len(objs))
	for i, o := range objs {
		l.Items[i] = *partialMetadata(o)
	}
	return l
}

// canTable reports whether the request's endpoint renders Tables. As
// upstream, endpoints without a table converter (the reviews, and the
// eviction, binding and token subresources) answer a Table request 406.
func (q *request) canTable() bool {
	if q.res == nil {
		return false
	}
	switch q.info.subresource {
	case "eviction", "binding", "token":
		return false
	}
	return true
}

// acceptWithoutTable negotiates again without the Accept clauses that ask
// for a Table, for an endpoint that cannot render one: a client offering a
// fallback gets it, one asking only for a Table gets upstream's 406.
func (q *request) acceptWithoutTable() (accept, error) {
	var rest []string
	for _, part := range strings.Split(q.r.Header.Get("Accept"), ",") {
		if _, params, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && params["as"] == "Table" {
			continue
		}
		rest = append(rest, part)
	}
	if len(rest) == 0 {
		return accept{}, notAcceptable("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf")
	}
	r := *q.r
	r.Header = http.Header{"Accept": {strings.Join(rest, ",")}}
	a, err := negotiate(&r)
	if err != nil {
		return a, notAcceptable(err.Error())
	}
	return a, nil
}
