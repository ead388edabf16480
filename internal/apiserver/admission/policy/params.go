package policy

import (
	"context"
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// paramKindGVK parses a policy's paramKind. ok is false for a policy
// without one; a bad apiVersion is an error (upstream leaves such a policy
// out altogether).
func paramKindGVK(pk *admissionregistrationv1.ParamKind) (gvk schema.GroupVersionKind, ok bool, err error) {
	if pk == nil {
		return gvk, false, nil
	}
	gv, err := schema.ParseGroupVersion(pk.APIVersion)
	if err != nil {
		return gvk, false, fmt.Errorf("failed to parse paramKind APIVersion: %w", err)
	}
	return gv.WithKind(pk.Kind), true, nil
}

// paramKindError is the configuration error of a policy whose paramKind the
// server does not serve.
func paramKindError(getter ParamGetter, gvk schema.GroupVersionKind, hasParamKind bool) error {
	if !hasParamKind {
		return nil
	}
	if getter != nil {
		if _, known := getter.Scope(gvk); known {
			return nil
		}
	}
	return fmt.Errorf("failed to find resource referenced by paramKind: '%v'", gvk)
}

// collectParams resolves a binding's paramRef to the params the policy is
// evaluated with, once each. A nil entry means "no params": a policy without
// paramKind, or a binding without paramRef. An empty result with
// parameterNotFoundAction Allow means the binding is skipped.
func collectParams(ctx context.Context, getter ParamGetter, gvk schema.GroupVersionKind, hasParamKind bool, ref *admissionregistrationv1.ParamRef, namespace string) ([]*unstructured.Unstructured, error) {
	if !hasParamKind || ref == nil {
		return []*unstructured.Unstructured{nil}, nil
	}
	namespaced, known := getter.Scope(gvk)
	if !known {
		return nil, fmt.Errorf("paramKind kind `%v` not known", paramKindString(gvk))
	}
	paramsNamespace := ""
	if namespaced {
		paramsNamespace = namespace
		if ref.Namespace != "" {
			paramsNamespace = ref.Namespace
		} else if paramsNamespace == "" {
			return nil, errors.New("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources")
		}
	}

	var params []*unstructured.Unstructured
	switch {
	case ref.Namespace != "" && !namespaced:
		return nil, errors.New("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
	case ref.Name != "":
		if ref.Selector != nil {
			return nil, errors.New("paramRef.name and paramRef.selector are mutually exclusive")
		}
		p, err := getter.GetParam(ctx, gvk, paramsNamespace, ref.Name)
		switch {
		case err == nil:
			params = []*unstructured.Unstructured{p}
		case apierrors.IsNotFound(err):
		default:
			return nil, err
		}
	case ref.Selector != nil:
		selector, err := metav1.LabelSelectorAsSelector(ref.Selector)
		if err != nil {
			return nil, err
		}
		if params, err = getter.ListParams(ctx, gvk, paramsNamespace, selector); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("one of name or selector must be provided")
	}

	if len(params) == 0 && ref.ParameterNotFoundAction != nil && *ref.ParameterNotFoundAction == admissionregistrationv1.DenyAction {
		return nil, errors.New("no params found for policy binding with `Deny` parameterNotFoundAction")
	}
	for i, p := range params {
		if p.GetObjectKind().GroupVersionKind().Empty() {
			// CEL sees apiVersion and kind, as upstream makes sure.
			p = p.DeepCopy()
			p.SetGroupVersionKind(gvk)
			params[i] = p
		}
	}
	return params, nil
}

// paramKindString formats a paramKind as upstream's messages do.
func paramKindString(gvk schema.GroupVersionKind) string {
	pk := admissionregistrationv1.ParamKind{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind}
	return pk.String()
}
