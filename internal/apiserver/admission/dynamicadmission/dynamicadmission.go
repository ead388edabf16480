// Package dynamicadmission holds what Skiff's two dynamic admission
// plugins, webhooks and admission policies, share: which requests they may
// never see, how a rule or an object selector selects a request, and the
// values their CEL expressions read (object, oldObject, request,
// authorizer). Upstream keeps these in k8s.io/apiserver's admission plugin
// packages, which we do not import; this package keeps a single copy so
// the two plugins cannot drift apart.
package dynamicadmission

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// NamespacesResource is the resource of Namespace objects, which admission
// treats as cluster-scoped and whose own name is their namespace.
var NamespacesResource = corev1.SchemeGroupVersion.WithResource("namespaces")

// IsAdmissionConfigurationKind reports the admissionregistration kinds no
// webhook or policy ever applies to, so that a broken one cannot prevent
// its own repair (upstream's IsExemptAdmissionConfigurationResource).
func IsAdmissionConfigurationKind(gvk schema.GroupVersionKind) bool {
	if gvk.Group != admissionregistrationv1.GroupName {
		return false
	}
	switch gvk.Kind {
	case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
		"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding":
		return true
	}
	return false
}
