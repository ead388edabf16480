package apiserver

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

// equivalents tells admission which served resources hold the same
// objects, for matchPolicy Equivalent: those stored under one etcd prefix,
// as upstream keys its equivalent resource registry by storage prefix.
// That is every served version of a CRD, and built-ins served in several
// versions or groups (autoscaling/v1 and v2 HorizontalPodAutoscalers, core
// and events.k8s.io Events).
type equivalents struct{ s *Server }

var _ admission.Equivalents = equivalents{}

// groupSharedPrefixes groups the built-in resources by storage prefix,
// keeping the prefixes served more than once.
func (s *Server) groupSharedPrefixes() map[string][]*resource {
	all := map[string][]*resource{}
	for _, r := range s.resources {
		all[r.prefix] = append(all[r.prefix], r)
	}
	for p, rs := range all {
		if len(rs) < 2 {
			delete(all, p)
		}
	}
	return all
}

// resourceForKind finds the served resource of a kind, built-in first.
func (s *Server) resourceForKind(gvk schema.GroupVersionKind) *resource {
	if r := s.byKind[gvk]; r != nil {
		return r
	}
	return s.customResources().byKind[gvk]
}

// EquivalentResources implements admission.Equivalents. The request's
// group comes first, then higher versions first, as discovery prefers.
func (e equivalents) EquivalentResources(gvr schema.GroupVersionResource, subresource string) []admission.EquivalentResource {
	r := e.s.lookupResource(gvr)
	if r == nil {
		return nil
	}
	var out []admission.EquivalentResource
	add := func(o *resource) {
		if o.prefix == r.prefix && (subresource == "" || o.HasSubresource(subresource)) {
			out = append(out, admission.EquivalentResource{Resource: o.GVR, Kind: o.gvk})
		}
	}
	if r.custom != nil {
		for _, o := range e.s.customResources().byGVR {
			add(o)
		}
	} else if shared, ok := e.s.sharedPrefixes()[r.prefix]; ok {
		for _, o := range shared {
			add(o)
		}
	} else {
		add(r) // most built-ins are served once: no scan
	}
	slices.SortFunc(out, func(a, b admission.EquivalentResource) int {
		ag, bg := a.Resource.Group == gvr.Group, b.Resource.Group == gvr.Group
		switch {
		case ag != bg && ag:
			return -1
		case ag != bg:
			return 1
		case a.Resource.Group != b.Resource.Group:
			return strings.Compare(a.Resource.Group, b.Resource.Group)
		}
		return -version.CompareKubeAwareVersionStrings(a.Resource.Version, b.Resource.Version)
	})
	return out
}

// Convert implements admission.Equivalents: custom objects through the
// CRD's conversion (None or Webhook), built-ins through their storage
// form.
func (e equivalents) Convert(ctx context.Context, obj runtime.Object, from, to schema.GroupVersionKind) (runtime.Object, error) {
	src, dst := e.s.resourceForKind(from), e.s.resourceForKind(to)
	if src == nil || dst == nil || src.prefix != dst.prefix {
		return nil, fmt.Errorf("no conversion from %v to %v", from, to)
	}
	if reflect.TypeOf(obj) != reflect.TypeOf(src.New()) {
		return nil, fmt.Errorf("cannot convert a %T as %v", obj, from)
	}
	obj = obj.DeepCopyObject() // conversions may share memory with their input
	if dst.custom != nil {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("cannot convert a %T as %v", obj, from)
		}
		u.SetGroupVersionKind(from)
		return dst.convertCustom(ctx, u, to.GroupVersion().String())
	}
	out := obj
	if from != to {
		stored := obj
		var err error
		if src.Storage != nil {
			if stored, err = src.Storage.ToStorage(obj); err != nil {
				return nil, err
			}
		}
		out = stored
		if dst.Storage != nil {
			if out, err = dst.Storage.FromStorage(stored); err != nil {
				return nil, err
			}
		}
		if reflect.TypeOf(out) != reflect.TypeOf(dst.New()) {
			return nil, fmt.Errorf("no conversion from %v to %v", from, to)
		}
	}
	out.GetObjectKind().SetGroupVersionKind(to)
	return out, nil
}
