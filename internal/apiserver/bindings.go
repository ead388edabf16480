package apiserver

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// bindingGR names the binding subresource in Conflict errors, as upstream.
var bindingGR = schema.GroupResource{Resource: "pods/binding"}

// initContainerAnnotations are the pre-1.6 init container annotations that
// upstream drops from the annotations a Binding carries to its pod.
var initContainerAnnotations = []string{
	"pod.beta.kubernetes.io/init-containers",
	"pod.alpha.kubernetes.io/init-containers",
	"pod.beta.kubernetes.io/init-container-statuses",
	"pod.alpha.kubernetes.io/init-container-statuses",
}

// readBinding decodes a Binding from the request body.
func (q *request) readBinding() (*corev1.Binding, error) {
	data, err := q.body()
	if err != nil {
		return nil, err
	}
	dec, _, err := q.codecs.decoderFor(q.r.Header.Get("Content-Type"))
	if err != nil {
		return nil, unsupportedMediaType()
	}
	b := &corev1.Binding{}
	want := corev1.SchemeGroupVersion.WithKind("Binding")
	_, gvk, err := dec.Decode(data, &want, b)
	if err != nil && !runtime.IsStrictDecodingError(err) {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if gvk != nil && *gvk != want {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), want.GroupVersion()))
	}
	return b, nil
}

// validateBinding is upstream's ValidatePodBinding. Upstream returns its
// errors as a plain error, which its handlers answer with a 500 whose
// reason is empty; so does this.
func validateBinding(b *corev1.Binding) error {
	var errs field.ErrorList
	target := field.NewPath("target")
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		errs = append(errs, field.NotSupported(target.Child("kind"), b.Target.Kind, []string{"Node", "<empty>"}))
	}
	if b.Target.Name == "" {
		errs = append(errs, field.Required(target.Child("name"), ""))
	} else if b.Target.Kind == "" || b.Target.Kind == "Node" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(b.Target.Name, false) {
			errs = append(errs, field.Invalid(target.Child("name"), b.Target.Name, msg))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: errs.ToAggregate().Error(),
	}}
}

// bindPod assigns the pod named by b to b's node, as pods/binding and the
// legacy bindings resource do: the binding's UID and resourceVersion are
// preconditions, its annotations and labels are copied to the pod.
func (q *request) bindPod(ctx context.Context, pods *resource, ns string, b *corev1.Binding) error {
	if err := validateBinding(b); err != nil {
		return err
	}
	if b.Name == "" {
		return apierrors.NewBadRequest("Name parameter required.")
	}
	key := pods.key(ns, b.Name)
	_, err := pods.guaranteedUpdate(ctx, ns, b.Name, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if b.UID != "" && b.UID != pod.UID {
			return nil, preconditionFailed(pods, key, pod.Name, fmt.Sprintf("UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
		}
		if rv := b.ResourceVersion; rv != "" && rv != pod.ResourceVersion {
			return nil, preconditionFailed(pods, key, pod.Name, fmt.Sprintf("ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", rv, pod.ResourceVersion))
		}
		var refuse error
		switch {
		case pod.DeletionTimestamp != nil:
			refuse = fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name)
		case pod.Spec.NodeName != "":
			refuse = fmt.Errorf("pod %v is already assigned to node %q", pod.Name, pod.Spec.NodeName)
		case len(pod.Spec.SchedulingGates) != 0:
			refuse = fmt.Errorf("pod %v has non-empty .spec.schedulingGates", pod.Name)
		}
		if refuse != nil {
			return nil, apierrors.NewConflict(bindingGR, pod.Name, refuse)
		}
		pod.Spec.NodeName = b.Target.Name
		pod.Status.NominatedNodeName = ""
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		for k, v := range b.Annotations {
			pod.Annotations[k] = v
		}
		for _, k := range initContainerAnnotations {
			delete(pod.Annotations, k)
		}
		if len(b.Labels) > 0 && pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		for k, v := range b.Labels {
			pod.Labels[k] = v
		}
		markScheduled(pod)
		if q.dryRun() {
			return nil, errDryRun
		}
		return pod, nil
	})
	if err == errDryRun {
		return nil
	}
	return err
}

// preconditionFailed is upstream's Conflict for a failed storage
// precondition, which quotes its storage error.
func preconditionFailed(r *resource, key, name, msg string) error {
	return apierrors.NewConflict(r.gr, name, fmt.Errorf("StorageError: invalid object, Code: 4, Key: %s, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: %s", key, msg))
}

// markScheduled sets the PodScheduled condition to True, keeping its
// transition time when it already was.
func markScheduled(pod *corev1.Pod) {
	c := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type != c.Type {
			continue
		}
		if pod.Status.Conditions[i].Status == c.Status {
			c.LastTransitionTime = pod.Status.Conditions[i].LastTransitionTime
		}
		pod.Status.Conditions[i] = c
		return
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// writeBound answers a successful binding: a Success Status, 201.
func (q *request) writeBound() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	st := &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated}
	q.writeObject(q.w, a.media, http.StatusCreated, st)
	return nil
}

// serveBindings answers POST /api/v1/namespaces/NS/bindings, the legacy
// form of pods/NAME/binding: the pod is the one the Binding names.
func (q *request) serveBindings() error {
	if q.r.Method != http.MethodPost || q.info.name != "" {
		return apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "bindings"}, q.r.Method)
	}
	if err := q.checkWriteOptions(); err != nil {
		return err
	}
	b, err := q.readBinding()
	if err != nil {
		return err
	}
	if b.Namespace != "" && b.Namespace != q.info.namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	// Upstream wipes the system fields of a created object's metadata:
	// here the UID precondition goes, the resourceVersion one stays.
	b.UID = ""
	pods := q.resources[corev1.SchemeGroupVersion.WithResource("pods")]
	if err := q.bindPod(q.ctx, pods, q.info.namespace, b); err != nil {
		return err
	}
	return q.writeBound()
}
