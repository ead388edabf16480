package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"google.golang.org/protobuf/types/known/structpb"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/managedfields"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/mutation"
	"k8s.io/apiserver/pkg/cel/mutation/dynamic"
)

var (
	applyConfigurationType = types.NewObjectType("Object")
	jsonPatchListType      = cel.ListType(types.NewObjectType("JSONPatch"))
)

// compiledMutating is a MutatingAdmissionPolicy ready to evaluate.
type compiledMutating struct {
	compiledBase
	mutations []compiledMutation
}

type compiledMutation struct {
	patchType admissionregistrationv1.PatchType
	program
}

func compileMutating(p *mapPolicy) *compiledMutating {
	hasParams := p.Spec.ParamKind != nil
	c := &compiledMutating{compiledBase: compileBase(hasParams, true, p.Spec.FailurePolicy, p.Spec.Variables, p.Spec.MatchConditions)}
	if c.envErr != nil {
		return c
	}
	opts := envOptions{params: hasParams, authorizer: true, patchTypes: true}
	for _, mu := range p.Spec.Mutations {
		cm := compiledMutation{patchType: mu.PatchType}
		switch {
		case mu.PatchType == admissionregistrationv1.PatchTypeApplyConfiguration && mu.ApplyConfiguration != nil:
			cm.program = c.env.compile(mu.ApplyConfiguration.Expression, opts, applyConfigurationType)
		case mu.PatchType == admissionregistrationv1.PatchTypeJSONPatch && mu.JSONPatch != nil:
			cm.program = c.env.compile(mu.JSONPatch.Expression, opts, jsonPatchListType)
		default:
			cm.program = program{err: fmt.Errorf("unsupported mutation patchType %q", mu.PatchType)}
		}
		c.mutations = append(c.mutations, cm)
	}
	return c
}

// apply evaluates one mutation against in.object and writes the result
// back into the same object.
func (c *compiledMutating) apply(ctx context.Context, mu compiledMutation, in input, tc managedfields.TypeConverter) error {
	if mu.err != nil {
		return mu.err
	}
	act, err := newActivation(ctx, in, c.variables)
	if err != nil {
		return err
	}
	budget := int64(celconfig.RuntimeCELCostBudget)
	val, evalErr, fatal := act.evaluate(ctx, mu.program, &budget)
	if fatal != nil {
		return fatal
	}
	if evalErr != nil {
		return evalErr
	}
	kind := schema.GroupVersionKind(in.matchKind) // the version in.object is in
	current, err := objectMap(in.object, kind.GroupVersion().String(), kind.Kind)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	var patched map[string]any
	if mu.patchType == admissionregistrationv1.PatchTypeJSONPatch {
		if patched, err = applyJSONPatch(val, current); err != nil || patched == nil {
			return err
		}
		if err := replaceObject(in.object, patched); err != nil {
			return apierrors.NewInternalError(err)
		}
		return nil
	}
	if patched, err = applyConfiguration(val, current, tc, kind); err != nil {
		return err
	}
	if err := replaceObject(in.object, patched); err != nil {
		return fmt.Errorf("error applying patch: %w", err)
	}
	return nil
}

// applyConfiguration merges an Object{...} value into current: with the
// kind's schema when tc is set (server-side apply semantics, as upstream),
// otherwise by mergeMaps.
func applyConfiguration(val ref.Val, current map[string]any, tc managedfields.TypeConverter, kind schema.GroupVersionKind) (map[string]any, error) {
	obj, ok := val.(*dynamic.ObjectVal)
	if !ok {
		return nil, fmt.Errorf("unsupported return type from ApplyConfiguration expression: %v", val.Type())
	}
	if err := obj.CheckTypeNamesMatchFieldPathNames(); err != nil {
		return nil, fmt.Errorf("type mismatch: %w", err)
	}
	patch, err := native(obj.Value())
	if err != nil {
		return nil, fmt.Errorf("error applying patch: %w", err)
	}
	patchMap, ok := patch.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("invalid return type: %T", patch)
	}
	if tc != nil {
		merged, err := mergeApplyConfiguration(tc, kind, current, patchMap)
		if err != nil {
			return nil, fmt.Errorf("error applying patch: %w", err)
		}
		return merged, nil
	}
	return mergeMaps(current, patchMap), nil
}

// mergeMaps merges without a schema: maps merge field by field; lists
// whose items all carry a "name" merge by name (the key of most associative
// lists: containers, volumes, env); other lists and scalars are replaced.
func mergeMaps(current, patch map[string]any) map[string]any {
	out := make(map[string]any, len(current)+len(patch))
	for k, v := range current {
		out[k] = v
	}
	for k, v := range patch {
		out[k] = mergeValue(out[k], v)
	}
	return out
}

func mergeValue(current, patch any) any {
	switch p := patch.(type) {
	case map[string]any:
		if c, ok := current.(map[string]any); ok {
			return mergeMaps(c, p)
		}
	case []any:
		if c, ok := current.([]any); ok && namedItems(c) && namedItems(p) {
			return mergeNamedLists(c, p)
		}
	}
	return patch
}

func namedItems(items []any) bool {
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"].(string); !ok {
			return false
		}
	}
	return true
}

func mergeNamedLists(current, patch []any) []any {
	out := append([]any(nil), current...)
	index := make(map[string]int, len(out))
	for i, it := range out {
		index[it.(map[string]any)["name"].(string)] = i
	}
	for _, it := range patch {
		m := it.(map[string]any)
		name := m["name"].(string)
		if i, ok := index[name]; ok {
			out[i] = mergeMaps(out[i].(map[string]any), m)
			continue
		}
		index[name] = len(out)
		out = append(out, m)
	}
	return out
}

// applyJSONPatch applies a list of JSONPatch{...} values to current. A
// failed "test" operation leaves the object unchanged (nil, nil).
func applyJSONPatch(val ref.Val, current map[string]any) (map[string]any, error) {
	list, ok := val.(traits.Lister)
	if !ok {
		return nil, errors.New("type mismatch: JSONPatchType.expression should evaluate to array")
	}
	var patch jsonpatch.Patch
	for it := list.Iterator(); it.HasNext() == types.True; {
		op, err := jsonPatchOperation(it.Next())
		if err != nil {
			return nil, err
		}
		patch = append(patch, op)
	}
	doc, err := json.Marshal(current)
	if err != nil {
		return nil, fmt.Errorf("failed to create JSON patch: %w", err)
	}
	out, err := patch.Apply(doc)
	if errors.Is(err, jsonpatch.ErrTestFailed) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("JSON Patch: %w", err)
	}
	var m map[string]any
	if err := utiljson.Unmarshal(out, &m); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return m, nil
}

func jsonPatchOperation(v ref.Val) (jsonpatch.Operation, error) {
	native, err := v.ConvertToNative(reflect.TypeOf(&mutation.JSONPatchVal{}))
	if err != nil {
		return nil, fmt.Errorf("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch: %w", err)
	}
	p, ok := native.(*mutation.JSONPatchVal)
	if !ok {
		return nil, fmt.Errorf("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch, got element of %T", native)
	}
	raw := func(s string) *json.RawMessage { m := json.RawMessage(s); return &m }
	op := jsonpatch.Operation{"op": raw(strconv.Quote(p.Op)), "path": raw(strconv.Quote(p.Path))}
	if p.From != "" {
		op["from"] = raw(strconv.Quote(p.From))
	}
	if p.Val != nil {
		if obj, ok := p.Val.(*dynamic.ObjectVal); ok {
			if err := obj.CheckTypeNamesMatchFieldPathNames(); err != nil {
				return nil, fmt.Errorf("type mismatch: %w", err)
			}
		}
		value, err := p.Val.ConvertToNative(reflect.TypeOf(&structpb.Value{}))
		if err != nil {
			return nil, fmt.Errorf("JSONPath valueExpression evaluated to a type that could not marshal to JSON: %w", err)
		}
		b, err := json.Marshal(value)
		if err != nil {
			return nil, fmt.Errorf("JSONPath valueExpression evaluated to a type that could not marshal to JSON: %w", err)
		}
		op["value"] = raw(string(b))
	}
	return op, nil
}

// native turns the value of a CEL object literal into plain unstructured
// data (maps with string keys, []any, int64, float64, string, bool, nil).
func native(v any) (any, error) {
	switch t := v.(type) {
	case nil, string, bool, int64, float64:
		return t, nil
	case uint64:
		return int64(t), nil
	case structpb.NullValue:
		return nil, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			n, err := native(e)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", k, err)
			}
			out[k] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := native(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case []ref.Val:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := native(e.Value())
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[ref.Val]ref.Val:
		out := make(map[string]any, len(t))
		for k, e := range t {
			key, ok := k.Value().(string)
			if !ok {
				return nil, fmt.Errorf("map key %v is of type %T, not string", k, k.Value())
			}
			n, err := native(e.Value())
			if err != nil {
				return nil, err
			}
			out[key] = n
		}
		return out, nil
	case ref.Val:
		return native(t.Value())
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

// objectMap is obj as unstructured data with apiVersion and kind set.
func objectMap(obj runtime.Object, apiVersion, kind string) (map[string]any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u.DeepCopy().Object, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	if _, ok := m["kind"]; !ok {
		m["apiVersion"], m["kind"] = apiVersion, kind
	}
	return m, nil
}

// replaceObject decodes m into obj in place: the caller keeps its pointer,
// and a typed object keeps its Go type and TypeMeta. Fields the type does
// not have are an error.
func replaceObject(obj runtime.Object, m map[string]any) error {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.Object = m
		return nil
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	fresh, ok := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(runtime.Object)
	if !ok {
		return fmt.Errorf("cannot decode into %T", obj)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(m, fresh, true); err != nil {
		return err
	}
	fresh.GetObjectKind().SetGroupVersionKind(gvk)
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(fresh).Elem())
	return nil
}
