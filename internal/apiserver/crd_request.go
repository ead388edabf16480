package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// pruneCustom drops the fields of a decoded custom object its schema does
// not declare, and returns them (with the decoder's own strict errors,
// e.g. duplicate fields) as one strict decoding error, as upstream's
// custom resource decoder does.
func (q *request) pruneCustom(obj runtime.Object, strictErr error) error {
	var errs []error
	if strictErr != nil {
		if se, ok := runtime.AsStrictDecodingError(strictErr); ok {
			errs = append(errs, se.Errors()...)
		} else {
			errs = append(errs, strictErr)
		}
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		for _, p := range q.res.custom.schema.Prune(u.Object) {
			errs = append(errs, fmt.Errorf("unknown field %q", p))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return runtime.NewStrictDecodingError(errs)
}

// normalizeMutated prunes and defaults a custom object after mutating
// admission, as upstream decodes a webhook's or policy's patched object
// with the resource's schema: fields the schema does not declare are
// dropped without an error, and defaults fill what a mutation removed.
func (r *resource) normalizeMutated(obj runtime.Object) {
	if r.custom == nil {
		return
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		r.custom.schema.Prune(u.Object)
		r.custom.schema.Default(u.Object)
	}
}

// unsupportedCustomMediaType is the 415 for a custom object sent in a
// format custom resources are not served in (protobuf).
func unsupportedCustomMediaType() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
	}}
}

// customPatchTypeError is upstream's 415 for a patch type custom resources
// do not take (strategic merge patch).
func customPatchTypeError() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
	}}
}

// acceptWithoutProtobuf negotiates again for a custom resource, whose
// objects have no protobuf form: a client offering another format gets
// it, one asking for protobuf alone gets a 406.
func (q *request) acceptWithoutProtobuf() (accept, error) {
	refused := notAcceptable("only the following media types are accepted: application/json, application/yaml")
	var rest []string
	for _, part := range strings.Split(q.r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == mediaProtobuf {
			continue
		}
		rest = append(rest, part)
	}
	if len(rest) == 0 {
		return accept{}, refused
	}
	r := *q.r
	r.Header = http.Header{"Accept": {strings.Join(rest, ",")}}
	a, err := negotiate(&r)
	if err != nil {
		return a, notAcceptable(err.Error())
	}
	return a, nil
}

// customToScale is the autoscaling/v1 Scale of a custom object, read
// through its CRD's replica and selector paths.
func customToScale(r *resource, obj runtime.Object) (*autoscalingv1.Scale, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || r.custom.scale == nil {
		return nil, apierrors.NewNotFound(r.gr, "scale")
	}
	spec, status, selector, err := customScaleValues(r.custom, u)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("read scale of %s %s: %w", r.gr, u.GetName(), err))
	}
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{
			Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
			ResourceVersion: u.GetResourceVersion(), CreationTimestamp: u.GetCreationTimestamp(),
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: int32(spec)},
		Status: autoscalingv1.ScaleStatus{Replicas: int32(status), Selector: selector},
	}, nil
}

// setCustomReplicas writes replicas at the CRD's spec replicas path.
func setCustomReplicas(r *resource, obj runtime.Object, replicas int32) (runtime.Object, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || r.custom.scale == nil {
		return nil, apierrors.NewNotFound(r.gr, "scale")
	}
	if err := unstructured.SetNestedField(u.Object, int64(replicas), jsonPath(r.custom.scale.SpecReplicasPath)...); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("set %s: %v", r.custom.scale.SpecReplicasPath, err))
	}
	return u, nil
}
