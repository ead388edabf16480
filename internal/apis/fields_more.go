package apis

import (
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
)

// moreFieldSet returns the field-selector fields of the kinds registered in
// registry_more.go that upstream declares beyond metadata.name (the
// kubelet's DRA plugin lists its ResourceSlices by spec.nodeName and
// spec.driver); nil for kinds with none.
func moreFieldSet(kind string) func(runtime.Object) fields.Set {
	switch kind {
	case "ResourceSlice":
		return func(obj runtime.Object) fields.Set {
			s := obj.(*resourcev1.ResourceSlice)
			node := ""
			if s.Spec.NodeName != nil {
				node = *s.Spec.NodeName
			}
			return fields.Set{
				resourcev1.ResourceSliceSelectorNodeName: node,
				resourcev1.ResourceSliceSelectorDriver:   s.Spec.Driver,
				resourcev1.ResourceSliceSelectorPoolName: s.Spec.Pool.Name,
			}
		}
	case "ClusterTrustBundle":
		return func(obj runtime.Object) fields.Set {
			return fields.Set{"spec.signerName": obj.(*certificatesv1.ClusterTrustBundle).Spec.SignerName}
		}
	case "PodCertificateRequest":
		return func(obj runtime.Object) fields.Set {
			r := obj.(*certificatesv1.PodCertificateRequest)
			return fields.Set{"spec.signerName": r.Spec.SignerName, "spec.podName": r.Spec.PodName, "spec.nodeName": string(r.Spec.NodeName)}
		}
	}
	return nil
}

// moreFieldLabelError is upstream's wording for an unsupported field label
// of those kinds.
func moreFieldLabelError(r *Resource, label string) (string, bool) {
	switch {
	case r.GVR.Group == resourcev1.GroupName && r.Kind == "ResourceSlice":
		return fmt.Sprintf("field label not supported for %s: %s", r.GVR.GroupVersion().WithKind(r.Kind), label), true
	case r.GVR.Group == certificatesv1.GroupName && (r.Kind == "ClusterTrustBundle" || r.Kind == "PodCertificateRequest"):
		return "field label not supported: " + label, true
	}
	return "", false
}
