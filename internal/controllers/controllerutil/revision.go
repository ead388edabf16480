package controllerutil

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
)

// TemplateHash names a pod template by its content (and, for
// Deployments, a collision count), in the alphabet upstream uses for
// pod-template-hash and controller-revision-hash values.
func TemplateHash(t *corev1.PodTemplateSpec, collisions *int32) string {
	h := fnv.New32a()
	b, _ := json.Marshal(t) // a PodTemplateSpec always marshals
	h.Write(b)
	if collisions != nil {
		fmt.Fprintf(h, "%d", *collisions)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// EnsureRevision records template as a ControllerRevision of owner (the
// history kubectl rollout history and undo read for StatefulSets and
// DaemonSets), labelled with hash and numbered after the owner's newest.
func EnsureRevision(ctx context.Context, client kubernetes.Interface, lister listersappsv1.ControllerRevisionLister,
	owner metav1.Object, gvk schema.GroupVersionKind, template corev1.PodTemplateSpec, hash string) error {
	revs, err := lister.ControllerRevisions(owner.GetNamespace()).List(labels.Everything())
	if err != nil {
		return err
	}
	var top int64
	for _, r := range revs {
		if ref := metav1.GetControllerOf(r); ref == nil || ref.UID != owner.GetUID() {
			continue
		}
		if r.Labels[appsv1.ControllerRevisionHashLabelKey] == hash {
			return nil
		}
		top = max(top, r.Revision)
	}
	data, err := json.Marshal(map[string]any{"spec": map[string]any{"template": template, "$patch": "replace"}})
	if err != nil {
		return err
	}
	_, err = client.AppsV1().ControllerRevisions(owner.GetNamespace()).Create(ctx, &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: owner.GetName() + "-" + hash, Namespace: owner.GetNamespace(),
			Labels:          map[string]string{appsv1.ControllerRevisionHashLabelKey: hash},
			OwnerReferences: []metav1.OwnerReference{ControllerRef(owner, gvk)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: top + 1,
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
