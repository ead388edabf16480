package apiserver

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission/policy"
	"github.com/skiff-dev/skiff/internal/storage"
)

var (
	validatingAdmissionPoliciesGVR       = admissionregistrationv1.SchemeGroupVersion.WithResource("validatingadmissionpolicies")
	validatingAdmissionPolicyBindingsGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("validatingadmissionpolicybindings")
	mutatingAdmissionPoliciesGVR         = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingadmissionpolicies")
	mutatingAdmissionPolicyBindingsGVR   = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingadmissionpolicybindings")
)

// policySource gives the admission policy plugins their policies, bindings,
// params and namespaces from the watch caches. Objects are shared with the
// caches: read only. A resource missing from the table means none of it.
type policySource struct{ s *Server }

// policyDeps are the admission policy plugins' dependencies on s.
func (s *Server) policyDeps() policy.Deps {
	src := policySource{s: s}
	return policy.Deps{
		Policies: src, Params: src, Namespaces: src,
		Authorizer:    s.authorizer,
		TypeConverter: policy.BuiltinTypeConverter,
	}
}

func (src policySource) ValidatingAdmissionPolicies() []*admissionregistrationv1.ValidatingAdmissionPolicy {
	return listCached[*admissionregistrationv1.ValidatingAdmissionPolicy](src.s, validatingAdmissionPoliciesGVR, "")
}

func (src policySource) ValidatingAdmissionPolicyBindings() []*admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return listCached[*admissionregistrationv1.ValidatingAdmissionPolicyBinding](src.s, validatingAdmissionPolicyBindingsGVR, "")
}

func (src policySource) MutatingAdmissionPolicies() []*admissionregistrationv1.MutatingAdmissionPolicy {
	return listCached[*admissionregistrationv1.MutatingAdmissionPolicy](src.s, mutatingAdmissionPoliciesGVR, "")
}

func (src policySource) MutatingAdmissionPolicyBindings() []*admissionregistrationv1.MutatingAdmissionPolicyBinding {
	return listCached[*admissionregistrationv1.MutatingAdmissionPolicyBinding](src.s, mutatingAdmissionPolicyBindingsGVR, "")
}

// GetNamespace reads the cache, then etcd, as the webhook plugins do.
func (src policySource) GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return webhookSource(src).GetNamespace(ctx, name)
}

// Scope reports whether the server serves kind, and its scope.
func (src policySource) Scope(kind schema.GroupVersionKind) (namespaced, known bool) {
	res := src.s.byKind[kind]
	if res == nil {
		return false, false
	}
	return res.Namespaced, true
}

// GetParam reads a param from the cache, then from etcd when the cache has
// not seen it yet: upstream falls back to a live read, so a param created
// just before its first use is found.
func (src policySource) GetParam(ctx context.Context, kind schema.GroupVersionKind, namespace, name string) (*unstructured.Unstructured, error) {
	res := src.s.byKind[kind]
	if res == nil {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: kind.Group, Resource: kind.Kind}, name)
	}
	if e, ok := res.cache.Get(res.key(namespace, name)); ok {
		return paramObject(kind, e.Obj)
	}
	obj, _, err := res.get(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return paramObject(kind, obj)
}

// ListParams lists the params in namespace matching selector.
func (src policySource) ListParams(_ context.Context, kind schema.GroupVersionKind, namespace string, selector labels.Selector) ([]*unstructured.Unstructured, error) {
	res := src.s.byKind[kind]
	if res == nil {
		return nil, nil
	}
	entries, _ := res.cache.List(res.nsPrefix(namespace), func(e *storage.Entry) bool {
		return selector.Matches(e.Labels)
	})
	out := make([]*unstructured.Unstructured, 0, len(entries))
	for _, e := range entries {
		u, err := paramObject(kind, e.Obj)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// paramObject converts a cached object to the unstructured form CEL reads,
// with apiVersion and kind set.
func paramObject(kind schema.GroupVersionKind, obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("param %v: %w", kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(kind)
	return u, nil
}
