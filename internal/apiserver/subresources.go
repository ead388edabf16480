package apiserver

import (
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

func newScale() runtime.Object { return &autoscalingv1.Scale{} }

// replicasOf returns pointers to the replica fields of a scalable object.
func replicasOf(obj runtime.Object) (spec **int32, status int32, sel *metav1.LabelSelector, err error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, nil
	case *appsv1.ReplicaSet:
		return &o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, nil
	case *appsv1.StatefulSet:
		return &o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector, nil
	case *corev1.ReplicationController:
		var ls *metav1.LabelSelector
		if o.Spec.Selector != nil {
			ls = &metav1.LabelSelector{MatchLabels: o.Spec.Selector}
		}
		return &o.Spec.Replicas, o.Status.Replicas, ls, nil
	}
	return nil, 0, nil, fmt.Errorf("%T has no scale subresource", obj)
}

// toScale returns the autoscaling/v1 Scale view of a scalable object.
func toScale(r *resource, obj runtime.Object) (*autoscalingv1.Scale, error) {
	if r.custom != nil {
		return customToScale(r, obj)
	}
	spec, status, sel, err := replicasOf(obj)
	if err != nil {
		return nil, apierrors.NewNotFound(r.gr, "scale")
	}
	om := obj.(metav1.ObjectMetaAccessor).GetObjectMeta()
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{
			Name: om.GetName(), Namespace: om.GetNamespace(), UID: om.GetUID(),
			ResourceVersion: om.GetResourceVersion(), CreationTimestamp: om.GetCreationTimestamp(),
		},
		Status: autoscalingv1.ScaleStatus{Replicas: status},
	}
	if *spec != nil {
		sc.Spec.Replicas = **spec
	}
	if sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err == nil {
			sc.Status.Selector = s.String()
		}
	}
	return sc, nil
}

// updateScale applies the Scale produced by mutate to cur's replicas.
func (q *request) updateScale(cur runtime.Object, mutate updateFunc) (runtime.Object, error) {
	out, err := mutate(cur.DeepCopyObject())
	if err != nil {
		return nil, err
	}
	sc, ok := out.(*autoscalingv1.Scale)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("expected a Scale, got %T", out))
	}
	om, err := meta.Accessor(cur)
	if err != nil {
		return nil, err
	}
	if sc.ResourceVersion != "" && sc.ResourceVersion != om.GetResourceVersion() {
		return nil, apierrors.NewConflict(q.res.gr, q.info.name, errors.New(conflictMessage))
	}
	if sc.Spec.Replicas < 0 {
		return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), q.info.name, field.ErrorList{
			field.Invalid(field.NewPath("spec", "replicas"), sc.Spec.Replicas, "must be greater than or equal to 0")})
	}
	next := cur.DeepCopyObject()
	if q.res.custom != nil {
		return setCustomReplicas(q.res, next, sc.Spec.Replicas)
	}
	spec, _, _, err := replicasOf(next)
	if err != nil {
		return nil, err
	}
	n := sc.Spec.Replicas
	*spec = &n
	return next, nil
}

// bind assigns a pod to a node (pods/binding), as the scheduler does.
func (q *request) bind() error {
	b, err := q.readBinding()
	if err != nil {
		return err
	}
	if b.Name != q.info.name {
		return apierrors.NewBadRequest("name in URL does not match name in Binding object")
	}
	if err := q.bindPod(q.ctx, q.res, q.info.namespace, b); err != nil {
		return err
	}
	return q.writeBound()
}
