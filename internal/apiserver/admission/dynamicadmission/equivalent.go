package dynamicadmission

import (
	"context"
	"fmt"
	"reflect"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

// Match is the form of a request a configuration selected it in: the
// request's own resource and kind, or under matchPolicy Equivalent those of
// another version serving the same objects.
type Match struct {
	Resource schema.GroupVersionResource
	Kind     schema.GroupVersionKind
}

// RequestMatch is the request's own form.
func RequestMatch(a *admission.Attributes) Match {
	return Match{Resource: a.Resource, Kind: a.Kind}
}

// Equivalent reports whether a matchPolicy asks for equivalent matching.
// An unset policy is Exact, as upstream treats it; the API defaults it.
func Equivalent(p *admissionregistrationv1.MatchPolicyType) bool {
	return p != nil && *p == admissionregistrationv1.Equivalent
}

// EquivalentMatch looks, rule by rule in order, for another form of a's
// resource that rule i selects (selects(i, gvr)), as upstream's
// matchPolicy Equivalent does once no rule matched the request itself.
func EquivalentMatch(a *admission.Attributes, rules int, selects func(i int, gvr schema.GroupVersionResource) bool) (Match, bool, error) {
	if a.Equivalents == nil {
		return Match{}, false, nil
	}
	equivalents := a.Equivalents.EquivalentResources(a.Resource, a.Subresource)
	for i := range rules {
		for _, e := range equivalents {
			if e.Resource == a.Resource || !selects(i, e.Resource) {
				continue // the request's own form was checked already
			}
			if e.Kind.Empty() {
				return Match{}, false, fmt.Errorf("unable to convert to %v: unknown kind", e.Resource)
			}
			return Match{Resource: e.Resource, Kind: e.Kind}, true, nil
		}
	}
	return Match{}, false, nil
}

// Versioned returns write a as seen in m's version: a copy whose Object
// and OldObject are converted to m.Kind (a itself when m is the request's
// own kind). Kind and Resource stay the request's, which reviews report as
// requestKind and requestResource.
func Versioned(ctx context.Context, a *admission.Attributes, m Match) (*admission.Attributes, error) {
	if m.Kind == a.Kind {
		return a, nil
	}
	if a.Equivalents == nil {
		return nil, fmt.Errorf("unable to convert %v to %v: no conversion known", a.Kind, m.Kind)
	}
	v := *a
	var err error
	if v.Object, err = convert(ctx, a, a.Object, m.Kind); err != nil {
		return nil, err
	}
	if v.OldObject, err = convert(ctx, a, a.OldObject, m.Kind); err != nil {
		return nil, err
	}
	return &v, nil
}

func convert(ctx context.Context, a *admission.Attributes, obj runtime.Object, to schema.GroupVersionKind) (runtime.Object, error) {
	if obj == nil {
		return nil, nil
	}
	out, err := a.Equivalents.Convert(ctx, obj, a.Kind, to)
	if err != nil {
		return nil, fmt.Errorf("failed to convert object from %v to %v: %w", a.Kind, to, err)
	}
	return out, nil
}

// ConvertBack writes obj, the mutated object in m's version, back into
// a.Object (in the request's version), in place so that callers holding
// the pointer see the change.
func ConvertBack(ctx context.Context, a *admission.Attributes, m Match, obj runtime.Object) error {
	if a.Equivalents == nil {
		return fmt.Errorf("unable to convert %v to %v: no conversion known", m.Kind, a.Kind)
	}
	out, err := a.Equivalents.Convert(ctx, obj, m.Kind, a.Kind)
	if err != nil {
		return fmt.Errorf("failed to convert object from %v to %v: %w", m.Kind, a.Kind, err)
	}
	return replaceContent(a.Object, out)
}

// replaceContent makes dst hold src's content; a typed dst keeps its own
// type metadata (often empty), as the write path expects.
func replaceContent(dst, src runtime.Object) error {
	if u, ok := dst.(*unstructured.Unstructured); ok {
		s, ok := src.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("cannot replace an unstructured object with a %T", src)
		}
		u.Object = s.Object
		return nil
	}
	dv, sv := reflect.ValueOf(dst), reflect.ValueOf(src)
	if dv.Kind() != reflect.Pointer || dv.IsNil() || sv.Type() != dv.Type() {
		return fmt.Errorf("cannot replace a %T with a %T", dst, src)
	}
	gvk := dst.GetObjectKind().GroupVersionKind()
	dv.Elem().Set(sv.Elem())
	dst.GetObjectKind().SetGroupVersionKind(gvk)
	return nil
}
