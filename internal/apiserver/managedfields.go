package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/fieldmanager"
)

// fieldManagers are a resource's field managers, one per subresource,
// built on first use: most resources are never written to.
type fieldManagers struct {
	mu    sync.Mutex
	bySub map[string]*fieldmanager.Manager
}

// fieldManager returns the manager tracking writes to subresource ("" for
// the main resource). The scale subresource has none: its writes are not
// recorded (upstream translates them to the main resource's fields).
func (r *resource) fieldManager(subresource string) (*fieldmanager.Manager, error) {
	r.managers.mu.Lock()
	defer r.managers.mu.Unlock()
	if m := r.managers.bySub[subresource]; m != nil {
		return m, nil
	}
	m, err := r.newFieldManager(subresource)
	if err != nil {
		return nil, err
	}
	if r.managers.bySub == nil {
		r.managers.bySub = map[string]*fieldmanager.Manager{}
	}
	r.managers.bySub[subresource] = m
	return m, nil
}

func (r *resource) newFieldManager(subresource string) (*fieldmanager.Manager, error) {
	var tc managedfields.TypeConverter
	var err error
	if r.custom != nil {
		s := r.custom.schema
		if s.Structural() == nil {
			tc, err = fieldmanager.CustomTypeConverter(r.gvk, nil, false)
		} else {
			tc, err = fieldmanager.CustomTypeConverter(r.gvk, s.OpenAPISchema(), r.custom.crd.Spec.PreserveUnknownFields)
		}
	} else {
		tc, err = fieldmanager.BuiltinTypeConverter()
	}
	if err != nil {
		return nil, fmt.Errorf("field manager for %s: %w", r.gvk, err)
	}
	m := fieldmanager.New(tc, r.gvk, subresource)
	if reset := r.resetFields(subresource); reset != nil {
		m.WithResetFields(reset)
	}
	if r.Default != nil {
		m.WithDefaulter(r.Default)
	}
	if r.gvk.Group == autoscalingv1.GroupName && r.Kind == "HorizontalPodAutoscaler" {
		m.WithVersionConverter(convertHPA)
	}
	return m, nil
}

// resetFields are the fields a write through subresource cannot set, so
// nobody comes to own them there: upstream's strategies' GetResetFields.
func (r *resource) resetFields(subresource string) *fieldpath.Set {
	path := fieldpath.MakePathOrDie
	gk := r.gvk.GroupKind()
	switch subresource {
	case "":
		switch {
		case gk == schema.GroupKind{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}:
			return fieldpath.NewSet(path("spec"), path("status"))
		case r.hasStatus:
			return fieldpath.NewSet(path("status"))
		}
		return nil
	case "status":
		if r.custom != nil {
			return fieldpath.NewSet(path("metadata"), path("spec"))
		}
		switch gk {
		case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
			return fieldpath.NewSet(path("spec"), path("metadata", "labels"))
		case schema.GroupKind{Kind: "Pod"}:
			return fieldpath.NewSet(path("spec"), path("metadata", "deletionTimestamp"), path("metadata", "ownerReferences"))
		case schema.GroupKind{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}:
			return fieldpath.NewSet(path("spec"), path("status", "conditions"))
		}
		if statusResetsSpecOnly[gk] {
			return fieldpath.NewSet(path("spec"))
		}
		return fieldpath.NewSet(path("metadata"), path("spec"))
	case "approval":
		return fieldpath.NewSet(path("spec"), path("status", "certificate"))
	case "finalize":
		return fieldpath.NewSet(path("status"))
	}
	return nil
}

// statusResetsSpecOnly are the kinds whose status subresource leaves all of
// metadata writable (the older strategies upstream); newer ones reset
// metadata too.
var statusResetsSpecOnly = map[schema.GroupKind]bool{
	{Group: "apps", Kind: "DaemonSet"}:                                true,
	{Group: "apps", Kind: "ReplicaSet"}:                               true,
	{Group: "apps", Kind: "StatefulSet"}:                              true,
	{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}:           true,
	{Group: "batch", Kind: "CronJob"}:                                 true,
	{Group: "batch", Kind: "Job"}:                                     true,
	{Kind: "Namespace"}:                                               true,
	{Kind: "Node"}:                                                    true,
	{Kind: "PersistentVolume"}:                                        true,
	{Kind: "PersistentVolumeClaim"}:                                   true,
	{Kind: "ReplicationController"}:                                   true,
	{Kind: "ResourceQuota"}:                                           true,
	{Kind: "Service"}:                                                 true,
	{Group: "networking.k8s.io", Kind: "Ingress"}:                     true,
	{Group: "policy", Kind: "PodDisruptionBudget"}:                    true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: true,
}

// convertHPA converts a HorizontalPodAutoscaler between autoscaling/v1 and
// v2, which share storage, so managers recorded under either version keep
// their fields.
func convertHPA(obj runtime.Object, gv schema.GroupVersion) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("convert %T: want unstructured", obj)
	}
	var out runtime.Object
	switch from, to := u.GetAPIVersion(), gv.String(); {
	case from == to:
		return u, nil
	case from == autoscalingv1.SchemeGroupVersion.String() && to == autoscalingv2.SchemeGroupVersion.String():
		in := &autoscalingv1.HorizontalPodAutoscaler{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, in); err != nil {
			return nil, err
		}
		out = apis.HPAToV2(in)
	case from == autoscalingv2.SchemeGroupVersion.String() && to == autoscalingv1.SchemeGroupVersion.String():
		in := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, in); err != nil {
			return nil, err
		}
		v1, err := apis.HPAToV1(in)
		if err != nil {
			return nil, err
		}
		out = v1
	default:
		return nil, fmt.Errorf("no conversion from %s to %s", from, to)
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(out)
	if err != nil {
		return nil, err
	}
	res := &unstructured.Unstructured{Object: content}
	res.SetGroupVersionKind(gv.WithKind("HorizontalPodAutoscaler"))
	return res, nil
}

// fieldManagerName is who a create, update or non-apply patch is recorded
// for: ?fieldManager=, else the program name of the User-Agent.
func (q *request) fieldManagerName() string {
	if name := q.r.URL.Query().Get("fieldManager"); name != "" {
		return name
	}
	return fieldmanager.ManagerName(q.r.UserAgent())
}

// recordUpdate records in next's managedFields that this request changed
// live (nil for a create) into next. Tracking never fails a write: should
// it fail, next keeps live's entries.
func (q *request) recordUpdate(live, next runtime.Object) runtime.Object {
	m, err := q.res.fieldManager(q.info.subresource)
	if err != nil {
		q.log.Error("managed fields not recorded", "resource", q.res.gr.String(), "err", err)
		return next
	}
	if m == nil {
		return next
	}
	return m.UpdateNoErrors(live, next, q.fieldManagerName())
}

// isApply reports whether the request is a server-side apply.
func (q *request) isApply() bool {
	return q.r.Method == http.MethodPatch && patchTypeOf(q.r) == patchApply
}

// bareServerError is how upstream answers an error that carries no API
// status (a field the schema does not declare in an apply configuration):
// a 500 whose message is the error's text, with no reason.
func bareServerError(err error) error {
	var st apierrors.APIStatus
	if err == nil || errors.As(err, &st) {
		return err
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error(),
	}}
}

// emptyForApply is the object an apply that creates starts from: an empty
// object of the resource's type with its kind (and, unstructured, the
// URL's name and namespace, which the field manager names it by).
func (q *request) emptyForApply() runtime.Object {
	obj := q.res.New()
	obj.GetObjectKind().SetGroupVersionKind(q.res.gvk)
	if m, err := meta.Accessor(obj); err == nil && q.res.custom != nil {
		m.SetName(q.info.name)
		if q.res.Namespaced {
			m.SetNamespace(q.info.namespace)
		}
	}
	return obj
}

// addWarnings sends admission plugins' warnings to the client as Warning
// headers, once each, as upstream's warning recorder does.
func (q *request) addWarnings(attrs *admission.Attributes) {
	if attrs == nil {
		return
	}
	for _, w := range attrs.Warnings {
		q.addWarning(w)
	}
}

// addWarning adds one Warning header unless the response already has it.
func (q *request) addWarning(text string) {
	v := fmt.Sprintf(`299 - %q`, text)
	if slices.Contains(q.w.Header().Values("Warning"), v) {
		return
	}
	q.w.Header().Add("Warning", v)
}
