package differential

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// drop marks a mutation that removes the field.
type dropField struct{}

// mutation changes one field of a valid object.
type mutation struct {
	path  []any // map keys (string) and list indexes (int) in the JSON form
	value any   // the new value, or dropField{}
	what  string
}

func (m mutation) String() string {
	var b strings.Builder
	for i, p := range m.path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p.(string))
		}
	}
	return b.String() + "=" + m.what
}

var (
	quantityType = reflect.TypeFor[resource.Quantity]()
	intOrStrType = reflect.TypeFor[intstr.IntOrString]()
	timeTypes    = []reflect.Type{reflect.TypeFor[metav1.Time](), reflect.TypeFor[metav1.MicroTime](), reflect.TypeFor[metav1.Duration]()}
	objMetaType  = reflect.TypeFor[metav1.ObjectMeta]()
	typeMetaType = reflect.TypeFor[metav1.TypeMeta]()
)

// mutations lists, in field declaration order, the changes to try on
// every field the valid object sets: strings become invalid names (plain
// strings) or unknown enum values (named string types), numbers negative,
// quantities negative or malformed, and fields, lists and structs are
// dropped, which tests required fields.
// jsonMarshalerType is encoding/json's Marshaler interface.
var jsonMarshalerType = reflect.TypeFor[json.Marshaler]()

func mutations(v reflect.Value, path []any, top bool) []mutation {
	var out []mutation
	add := func(value any, what string) {
		out = append(out, mutation{path: slices.Clone(path), value: value, what: what})
	}
	t := v.Type()
	switch {
	case slices.Contains(timeTypes, t):
		return nil
	case t == quantityType:
		add("-1", "-1")
		add("abc", "abc")
		return out
	case t == intOrStrType:
		add("abc%", `"abc%"`)
		add(-1, "-1")
		return out
	case t.Kind() == reflect.Struct && (t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType)):
		// Types with a JSON form of their own (a CRD schema's items,
		// defaults, enums) do not map field by field onto JSON: the
		// corpus covers them by hand.
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return mutations(v.Elem(), path, false)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Type == typeMetaType {
				continue
			}
			name, inline := jsonName(f)
			if name == "-" || (top && name == "status") {
				continue
			}
			fv := v.Field(i)
			if fv.IsZero() {
				continue
			}
			if f.Type == objMetaType {
				out = append(out, metaMutations(fv, append(slices.Clone(path), name))...)
				continue
			}
			p := path
			if !inline {
				p = append(slices.Clone(path), name)
			}
			if !inline && !isBool(f.Type) {
				out = append(out, mutation{path: p, value: dropField{}, what: "dropped"})
			}
			out = append(out, mutations(fv, p, false)...)
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil
		}
		for i := range v.Len() {
			out = append(out, mutations(v.Index(i), append(slices.Clone(path), i), false)...)
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil
		}
		if t.Elem().Kind() == reflect.String {
			add(addKey("bad key!", "v", v), `{"bad key!": "v"}`)
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			out = append(out, mutations(v.MapIndex(k), append(slices.Clone(path), k.String()), false)...)
		}
	case reflect.String:
		if t.PkgPath() != "" {
			add("Bogus", "Bogus")
		} else {
			add("Invalid_Value!", "Invalid_Value!")
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		add(-1, "-1")
	case reflect.Float32, reflect.Float64:
		add(-1, "-1")
	}
	return out
}

func isBool(t reflect.Type) bool {
	return t.Kind() == reflect.Bool || (t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool)
}

// metaMutations only touches labels and annotations: names and
// namespaces are the corpus's business.
func metaMutations(v reflect.Value, path []any) []mutation {
	var out []mutation
	for _, f := range []string{"labels", "annotations"} {
		m := v.FieldByName(strings.ToUpper(f[:1]) + f[1:])
		p := append(slices.Clone(path), f)
		base := map[string]string{}
		if !m.IsNil() {
			base = m.Interface().(map[string]string)
		}
		with := func(k, val string) map[string]string {
			c := map[string]string{}
			for bk, bv := range base {
				c[bk] = bv
			}
			c[k] = val
			return c
		}
		out = append(out,
			mutation{path: p, value: with("bad key!", "v"), what: `{"bad key!": "v"}`},
			mutation{path: p, value: with("k", strings.Repeat("v", 64)), what: "value of 64 characters"})
	}
	return out
}

func addKey(k, val string, m reflect.Value) map[string]string {
	c := map[string]string{k: val}
	for _, mk := range m.MapKeys() {
		c[mk.String()] = m.MapIndex(mk).String()
	}
	return c
}

// jsonName is the field's JSON name, and whether it is inlined.
func jsonName(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("json")
	name, opts, _ := strings.Cut(tag, ",")
	if strings.Contains(","+opts+",", ",inline,") || (f.Anonymous && name == "") {
		return "", true
	}
	if name == "" {
		name = f.Name
	}
	return name, false
}

// apply returns a copy of obj with m applied.
func apply(obj map[string]any, m mutation) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	var parent any = c
	for i, p := range m.path {
		last := i == len(m.path)-1
		switch p := p.(type) {
		case string:
			mp, ok := parent.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: not an object at %q", m, p)
			}
			if last {
				if _, drop := m.value.(dropField); drop {
					delete(mp, p)
				} else {
					mp[p] = m.value
				}
				return c, nil
			}
			parent = mp[p]
		case int:
			l, ok := parent.([]any)
			if !ok || p >= len(l) {
				return nil, fmt.Errorf("%s: not a list at %d", m, p)
			}
			if last {
				l[p] = m.value
				return c, nil
			}
			parent = l[p]
		}
	}
	return nil, fmt.Errorf("%s: empty path", m)
}

// baseObject is a valid object from testdata/valid.
type baseObject struct {
	gvk schema.GroupVersionKind
	obj map[string]any
	src string
}

func loadBases(t *testing.T) []baseObject {
	files, err := filepath.Glob(filepath.Join("testdata", "valid", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid objects: %v", err)
	}
	sort.Strings(files)
	var out []baseObject
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(data), "\n---\n") {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			gv, err := schema.ParseGroupVersion(fmt.Sprint(obj["apiVersion"]))
			if err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			out = append(out, baseObject{gvk: gv.WithKind(fmt.Sprint(obj["kind"])), obj: obj, src: f + "#" + strconv.Itoa(i)})
		}
	}
	return out
}

// typed decodes b into its client-go type, so the walk knows each
// field's Go type.
func (b baseObject) typed() (reflect.Value, error) {
	o, err := scheme.Scheme.New(b.gvk)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%s: %w", b.src, err)
	}
	data, err := json.Marshal(b.obj)
	if err != nil {
		return reflect.Value{}, err
	}
	if err := json.Unmarshal(data, o); err != nil {
		return reflect.Value{}, fmt.Errorf("%s: %w", b.src, err)
	}
	return reflect.ValueOf(o), nil
}

// resourceInfo is where a kind is served, from upstream's discovery.
type resourceInfo struct {
	resource   string
	namespaced bool
}

func resourceIndex(e *endpoint) (map[schema.GroupVersionKind]resourceInfo, error) {
	var groups metav1.APIGroupList
	if err := e.getJSON("/apis", "application/json", &groups); err != nil {
		return nil, err
	}
	paths := []string{"/api/v1"}
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			paths = append(paths, "/apis/"+v.GroupVersion)
		}
	}
	idx := map[schema.GroupVersionKind]resourceInfo{}
	for _, p := range paths {
		var list metav1.APIResourceList
		if err := e.getJSON(p, "application/json", &list); err != nil {
			return nil, err
		}
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			return nil, err
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "create") {
				continue
			}
			idx[gv.WithKind(r.Kind)] = resourceInfo{resource: r.Name, namespaced: r.Namespaced}
		}
	}
	return idx, nil
}

// mutationCases turns every base object into one create per mutation,
// each under its own name; the unmutated object is the first case.
func mutationCases(t *testing.T, up *endpoint) []corpusCase {
	idx, err := resourceIndex(up)
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	for _, b := range loadBases(t) {
		info, ok := idx[b.gvk]
		if !ok {
			t.Errorf("%s: upstream does not serve %s with create", b.src, b.gvk)
			continue
		}
		v, err := b.typed()
		if err != nil {
			t.Fatal(err)
		}
		group := b.gvk.Group
		if group == "" {
			group = "core"
		}
		coll := "/apis/" + b.gvk.GroupVersion().String()
		if b.gvk.Group == "" {
			coll = "/api/v1"
		}
		if info.namespaced {
			coll += "/namespaces/diff"
		}
		coll += "/" + info.resource
		meta, _ := b.obj["metadata"].(map[string]any)
		baseName, _ := meta["name"].(string)
		named := func(obj map[string]any, i int) map[string]any {
			if baseName == "" { // reviews have no name
				return obj
			}
			m := obj["metadata"].(map[string]any)
			if i > 0 {
				m["name"] = baseName + "-m" + strconv.Itoa(i)
			}
			return obj
		}
		prefix := "mutate/" + group + "/" + b.gvk.Kind + "/"
		cases = append(cases, corpusCase{Name: prefix + "valid",
			request: request{Method: "POST", Path: coll, Body: named(b.obj, 0)}})
		for i, m := range mutations(v.Elem(), nil, true) {
			obj, err := apply(b.obj, m)
			if err != nil {
				t.Fatalf("%s: %v", b.src, err)
			}
			cases = append(cases, corpusCase{Name: prefix + m.String(),
				request: request{Method: "POST", Path: coll, Body: named(obj, i+1)}})
		}
	}
	return cases
}

func testMutations(t *testing.T, up, sk *endpoint, rep *reporter) {
	cases := mutationCases(t, up)
	var outcomes []outcome
	seen := map[string]int{}
	for _, c := range cases {
		// The same field path can come up twice (e.g. two mutations of
		// one quantity); keep names unique for the report.
		n := seen[c.Name]
		seen[c.Name]++
		if n > 0 {
			c.Name += "#" + strconv.Itoa(n)
		}
		o := runCase(up, sk, c)
		// A base object upstream refuses would make every mutation of it
		// meaningless: the corpus itself is wrong then.
		if strings.HasSuffix(c.Name, "/valid") && o.upstream.Code >= 300 {
			t.Errorf("%s: upstream refuses the valid object: %s", c.Name, o.upstream)
		}
		outcomes = append(outcomes, o)
	}
	summarise(t, "mutations", outcomes, loadAllowlist(t), rep)
}
