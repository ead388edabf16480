package apiserver

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apis"
)

// pods/ephemeralcontainers and pods/resize are served by the generic
// get/update/patch handlers; these hooks give them their own rules: the
// stored object takes only the subresource's slice of the client's pod,
// and is validated by the subresource's rules instead of the pod's update
// rules (which forbid exactly those changes).

func isPodSubresource(sub string) bool {
	return sub == "ephemeralcontainers" || sub == "resize"
}

// preparePodSubresource builds the pod to store from the client's (next)
// and the stored one (cur).
func preparePodSubresource(sub string, next, cur runtime.Object) runtime.Object {
	pod, old := next.(*corev1.Pod), cur.(*corev1.Pod)
	if sub == "resize" {
		return apis.PreparePodResize(pod, old)
	}
	return apis.PrepareEphemeralContainersUpdate(pod, old)
}

func validatePodSubresource(sub string, obj, old runtime.Object) field.ErrorList {
	pod, prev := obj.(*corev1.Pod), old.(*corev1.Pod)
	if sub == "resize" {
		return apis.ValidatePodResize(pod, prev)
	}
	return apis.ValidateEphemeralContainersUpdate(pod, prev)
}
