package controllerutil

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"reflect"

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
// DaemonSets), numbered after the owner's newest. As upstream, a revision
// carries the template's labels plus the hash (so the owner's selector
// finds its revisions), and an existing revision of the owner with the same
// data is the current one, whatever its name: it is renumbered to be the
// newest when it is not (a rollback), instead of a copy being made.
func EnsureRevision(ctx context.Context, client kubernetes.Interface, lister listersappsv1.ControllerRevisionLister,
	owner metav1.Object, gvk schema.GroupVersionKind, template corev1.PodTemplateSpec, hash string) error {
	revs, err := lister.ControllerRevisions(owner.GetNamespace()).List(labels.Everything())
	if err != nil {
		return err
	}
	data, err := revisionData(template)
	if err != nil {
		return err
	}
	var top int64
	var current *appsv1.ControllerRevision
	for _, r := range revs {
		if ref := metav1.GetControllerOf(r); ref == nil || ref.UID != owner.GetUID() {
			continue
		}
		top = max(top, r.Revision)
		if current == nil && sameJSON(r.Data.Raw, data) {
			current = r
		}
	}
	if current != nil {
		if current.Revision == top {
			return nil
		}
		bumped := current.DeepCopy()
		bumped.Revision = top + 1
		_, err := client.AppsV1().ControllerRevisions(bumped.Namespace).Update(ctx, bumped, metav1.UpdateOptions{})
		return err
	}
	revLabels := make(map[string]string, len(template.Labels)+1)
	maps.Copy(revLabels, template.Labels)
	revLabels[appsv1.ControllerRevisionHashLabelKey] = hash
	_, err = client.AppsV1().ControllerRevisions(owner.GetNamespace()).Create(ctx, &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name: owner.GetName() + "-" + hash, Namespace: owner.GetNamespace(),
			Labels:          revLabels,
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

// RevisionTemplate is the pod template stored in owner's revision with the
// given hash, or nil if there is none.
func RevisionTemplate(lister listersappsv1.ControllerRevisionLister, owner metav1.Object, hash string) (*corev1.PodTemplateSpec, error) {
	rev, err := lister.ControllerRevisions(owner.GetNamespace()).Get(owner.GetName() + "-" + hash)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ref := metav1.GetControllerOf(rev); ref == nil || ref.UID != owner.GetUID() {
		return nil, nil
	}
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(rev.Data.Raw, &data); err != nil {
		return nil, fmt.Errorf("revision %s/%s: %w", rev.Namespace, rev.Name, err)
	}
	return &data.Spec.Template, nil
}

// revisionData is a revision's data as upstream's controllers write it, byte
// for byte (clients such as the DaemonSet conformance spec find the current
// revision by comparing bytes): a patch replacing spec.template, the
// "$patch" directive inside the template, keys sorted at every level. A patch of
// the revision re-encodes data from a map, sorting the keys; data written
// in struct order would then differ byte for byte and be refused as a
// change to the immutable field.
func revisionData(template corev1.PodTemplateSpec) ([]byte, error) {
	raw, err := json.Marshal(template)
	if err != nil {
		return nil, err
	}
	var tmpl map[string]any
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// sameJSON reports whether two JSON documents hold the same value, whatever
// their formatting.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
