package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apis/crdschema"
	"github.com/skiff-dev/skiff/internal/storage"
)

// CustomResourceConverter converts custom objects between the versions of
// a CRD whose conversion strategy is Webhook (a ConversionReview client).
// Conversion None needs none: the server rewrites apiVersion itself.
type CustomResourceConverter interface {
	Convert(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition, objs []*unstructured.Unstructured, toAPIVersion string) ([]*unstructured.Unstructured, error)
}

// customInfo is what a resource served for one version of a CRD carries
// beyond the generic description.
type customInfo struct {
	crd     *apiextensionsv1.CustomResourceDefinition // the CRD as served
	version string
	schema  *crdschema.Version
	// storageAPIVersion is the apiVersion objects are written with.
	storageAPIVersion string
	scale             *apiextensionsv1.CustomResourceSubresourceScale
	// terminating is shared by the CRD's versions: creates are refused
	// while the CRD is being deleted.
	terminating *atomic.Bool
	converter   CustomResourceConverter
}

// newCustomResource builds the served resource of one version of crd.
// names are the CRD's accepted names.
func newCustomResource(crd *apiextensionsv1.CustomResourceDefinition, v *apiextensionsv1.CustomResourceDefinitionVersion,
	compiled *crdschema.Version, st *storage.Store, c *codecs, history int, terminating *atomic.Bool, conv CustomResourceConverter) *resource {
	names := crd.Status.AcceptedNames
	gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: names.Plural}
	info := &customInfo{
		crd: crd, version: v.Name, schema: compiled, terminating: terminating, converter: conv,
		storageAPIVersion: crd.Spec.Group + "/" + storageVersion(crd),
	}
	var subs []string
	if s := v.Subresources; s != nil {
		if s.Status != nil {
			subs = append(subs, "status")
		}
		if s.Scale != nil {
			subs = append(subs, "scale")
			info.scale = s.Scale
		}
	}
	def := &apis.Resource{
		GVR: gvr, Kind: names.Kind, Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		ShortNames: names.ShortNames, Categories: names.Categories, Subresources: subs, SingularName: names.Singular,
		New:     func() runtime.Object { return &unstructured.Unstructured{} },
		NewList: func() runtime.Object { return &unstructured.UnstructuredList{} },
	}
	def.Default = func(obj runtime.Object) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			compiled.Default(u.Object)
		}
	}
	want := gvr.GroupVersion().WithKind(names.Kind)
	def.Validate = func(obj runtime.Object) field.ErrorList {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil
		}
		return append(validateTypeMeta(u, want), compiled.Validate(context.Background(), u.Object)...)
	}
	def.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		u, ok := obj.(*unstructured.Unstructured)
		o, ok2 := old.(*unstructured.Unstructured)
		if !ok || !ok2 {
			return nil
		}
		return append(validateTypeMeta(u, want), compiled.ValidateUpdate(context.Background(), u.Object, o.Object)...)
	}
	def.FieldSet = func(obj runtime.Object) fields.Set {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			return compiled.FieldSet(u.Object)
		}
		return nil
	}
	prefix := "/registry/" + crd.Spec.Group + "/" + crd.Spec.Names.Plural + "/"
	res := &resource{
		Resource: def, gr: gvr.GroupResource(), gvk: want, prefix: prefix, store: st, codecs: c,
		hasSpec: true, hasStatus: def.HasSubresource("status"), custom: info,
	}
	res.fieldKeys = map[string]bool{"metadata.name": true}
	if def.Namespaced {
		res.fieldKeys["metadata.namespace"] = true
	}
	for _, f := range compiled.SelectableFields() {
		res.fieldKeys[f] = true
	}
	res.cache = storage.NewCache(st, storage.CacheConfig{Prefix: prefix, Decode: res.decode, Attrs: res.attrs, History: history})
	return res
}

// storageVersion is the name of the CRD's storage version.
func storageVersion(crd *apiextensionsv1.CustomResourceDefinition) string {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	if len(crd.Spec.Versions) > 0 {
		return crd.Spec.Versions[0].Name
	}
	return ""
}

// validateTypeMeta is upstream's check that a custom object names the
// endpoint's kind and version.
func validateTypeMeta(u *unstructured.Unstructured, want schema.GroupVersionKind) field.ErrorList {
	var errs field.ErrorList
	if u.GetKind() != want.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), u.GetKind(), "must be "+want.Kind))
	}
	if u.GetAPIVersion() != want.GroupVersion().String() {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), u.GetAPIVersion(), "must be "+want.GroupVersion().String()))
	}
	return errs
}

// decodeCustom reads a stored custom object (JSON in any version of the
// CRD) as this version: converted, pruned and defaulted, as upstream
// reads custom objects from storage.
func (r *resource) decodeCustom(data []byte, rev int64) (runtime.Object, error) {
	var m map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", r.gr, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u, err := r.convertCustom(context.Background(), u, r.gvk.GroupVersion().String())
	if err != nil {
		return nil, err
	}
	r.custom.schema.Prune(u.Object)
	r.custom.schema.Default(u.Object)
	u.SetResourceVersion(strconv.FormatInt(rev, 10))
	return u, nil
}

// encodeCustom serialises a custom object as JSON in the storage version,
// without its resourceVersion.
func (r *resource) encodeCustom(obj runtime.Object) ([]byte, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("encode %s: unexpected %T", r.gr, obj)
	}
	stored, err := r.convertCustom(context.Background(), u, r.custom.storageAPIVersion)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(stored.Object))
	for k, v := range stored.Object {
		out[k] = v
	}
	if md, ok := out["metadata"].(map[string]any); ok {
		md2 := make(map[string]any, len(md))
		for k, v := range md {
			if k != "resourceVersion" {
				md2[k] = v
			}
		}
		out["metadata"] = md2
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.gr, err)
	}
	return b, nil
}

// convertCustom returns u in apiVersion, without modifying u.
func (r *resource) convertCustom(ctx context.Context, u *unstructured.Unstructured, apiVersion string) (*unstructured.Unstructured, error) {
	if u.GetAPIVersion() == apiVersion {
		return u, nil
	}
	crd := r.custom.crd
	if c := crd.Spec.Conversion; c != nil && c.Strategy == apiextensionsv1.WebhookConverter {
		if r.custom.converter == nil {
			return nil, fmt.Errorf("conversion webhook for %s is not configured", u.GroupVersionKind())
		}
		out, err := r.custom.converter.Convert(ctx, crd, []*unstructured.Unstructured{u}, apiVersion)
		if err != nil {
			return nil, fmt.Errorf("conversion webhook for %s failed: %w", u.GroupVersionKind(), err)
		}
		if len(out) != 1 {
			return nil, fmt.Errorf("conversion webhook for %s returned %d objects, want 1", u.GroupVersionKind(), len(out))
		}
		return out[0], nil
	}
	// Conversion None: only apiVersion changes. A shallow copy leaves u
	// (possibly shared by the cache) untouched.
	out := make(map[string]any, len(u.Object))
	for k, v := range u.Object {
		out[k] = v
	}
	out["apiVersion"] = apiVersion
	return &unstructured.Unstructured{Object: out}, nil
}

// customScale is the autoscaling/v1 Scale view of a custom object, read
// through the CRD's scale paths.
func customScaleValues(info *customInfo, u *unstructured.Unstructured) (spec, status int64, selector string, err error) {
	sc := info.scale
	if spec, _, err = unstructured.NestedInt64(u.Object, jsonPath(sc.SpecReplicasPath)...); err != nil {
		return 0, 0, "", err
	}
	if status, _, err = unstructured.NestedInt64(u.Object, jsonPath(sc.StatusReplicasPath)...); err != nil {
		return 0, 0, "", err
	}
	if sc.LabelSelectorPath != nil && *sc.LabelSelectorPath != "" {
		if selector, _, err = unstructured.NestedString(u.Object, jsonPath(*sc.LabelSelectorPath)...); err != nil {
			return 0, 0, "", err
		}
	}
	return spec, status, selector, nil
}

// jsonPath splits a CRD's simple JSON path (".spec.replicas").
func jsonPath(p string) []string {
	return strings.Split(strings.TrimPrefix(p, "."), ".")
}

// objectMetaOf returns obj's metadata as an ObjectMeta, typed or not.
func objectMetaOf(obj runtime.Object) metav1.ObjectMeta {
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if om, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return *om
		}
	}
	var om metav1.ObjectMeta
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if md, ok := u.Object["metadata"].(map[string]any); ok {
			_ = runtime.DefaultUnstructuredConverter.FromUnstructured(md, &om)
		}
	}
	return om
}

// setOrDelete sets dst[key] to src[key], or removes it when src has none.
func setOrDelete(dst map[string]any, key string, src map[string]any) {
	if v, ok := src[key]; ok {
		dst[key] = runtime.DeepCopyJSONValue(v)
		return
	}
	delete(dst, key)
}

// sameSpec reports whether an update leaves what generation counts
// unchanged: for built-ins everything but metadata and status; for custom
// objects everything but metadata, and status when the status subresource
// owns it (upstream's custom resource strategies).
func (r *resource) sameSpec(next, cur runtime.Object) bool {
	a, ok := next.(*unstructured.Unstructured)
	b, ok2 := cur.(*unstructured.Unstructured)
	if !ok || !ok2 {
		return specEqual(next, cur)
	}
	strip := func(u *unstructured.Unstructured) map[string]any {
		m := make(map[string]any, len(u.Object))
		for k, v := range u.Object {
			if k != "metadata" && (k != "status" || !r.hasStatus) {
				m[k] = v
			}
		}
		return m
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

// listKind is the kind of the resource's lists: a CRD names its own.
func (r *resource) listKind() string {
	if r.custom != nil && r.custom.crd.Status.AcceptedNames.ListKind != "" {
		return r.custom.crd.Status.AcceptedNames.ListKind
	}
	return r.Kind + "List"
}
