package apis

import (
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateMore checks a new object of a kind registered in registry_more.go.
func validateMore(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *storagev1.StorageClass:
		return validateStorageClass(o)
	case *storagev1.CSIDriver:
		return validateCSIDriver(o)
	case *storagev1.CSINode:
		return validateCSINode(o)
	case *storagev1.CSIStorageCapacity:
		return validateCSIStorageCapacity(o)
	case *storagev1.VolumeAttachment:
		return validateVolumeAttachment(o)
	case *storagev1.VolumeAttributesClass:
		return validateVolumeAttributesClass(o)
	case *resourcev1.DeviceClass:
		errs := validateDeviceSelectors(o.Spec.Selectors, field.NewPath("spec", "selectors"))
		for i := range o.Spec.Config {
			errs = append(errs, validateDeviceConfig(&o.Spec.Config[i].DeviceConfiguration, field.NewPath("spec", "config").Index(i))...)
		}
		return errs
	case *resourcev1.ResourceClaim:
		return validateDeviceClaim(&o.Spec.Devices, field.NewPath("spec", "devices"))
	case *resourcev1.ResourceClaimTemplate:
		return validateDeviceClaim(&o.Spec.Spec.Devices, field.NewPath("spec", "spec", "devices"))
	case *resourcev1.ResourceSlice:
		return validateResourceSlice(o)
	case *resourcev1.DeviceTaintRule:
		errs := validateDeviceTaintSelector(o.Spec.DeviceSelector, field.NewPath("spec", "deviceSelector"))
		return append(errs, validateDeviceTaint(&o.Spec.Taint, field.NewPath("spec", "taint"))...)
	case *autoscalingv2.HorizontalPodAutoscaler:
		return validateHPA(o, nil)
	case *autoscalingv1.HorizontalPodAutoscaler:
		return validateHPA(HPAToV2(o), nil)
	case *certificatesv1.CertificateSigningRequest:
		return validateCSR(o)
	case *certificatesv1.ClusterTrustBundle:
		return validateClusterTrustBundle(o)
	case *certificatesv1.PodCertificateRequest:
		return validatePodCertificateRequest(o)
	case *storagemigrationv1.StorageVersionMigration:
		return validateStorageVersionMigration(o)
	case *networkingv1.Ingress:
		return validateIngress(o, nil)
	case *networkingv1.IngressClass:
		return validateIngressClass(o)
	case *networkingv1.NetworkPolicy:
		return validateNetworkPolicy(o, nil)
	case *discoveryv1.EndpointSlice:
		return validateEndpointSlice(o, nil)
	case *coordinationv1.Lease:
		return validateLease(o)
	case *corev1.Event:
		return validateCoreEvent(o)
	case *eventsv1.Event:
		return validateEventsV1(o)
	}
	return nil
}

// validateMoreUpdate checks the update rules (immutable fields) of those kinds.
func validateMoreUpdate(obj, old runtime.Object) field.ErrorList {
	errs := validateStorageMoreUpdate(obj, old)
	errs = append(errs, validateResourceMoreUpdate(obj, old)...)
	return append(errs, validateCertificatesMoreUpdate(obj, old)...)
}

// validateNetUpdate checks an update of an Ingress, IngressClass,
// NetworkPolicy or EndpointSlice, whose rules depend on the stored object.
func validateNetUpdate(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *networkingv1.Ingress:
		return validateIngress(o, old.(*networkingv1.Ingress))
	case *networkingv1.IngressClass:
		errs := immutable(o.Spec.Controller, old.(*networkingv1.IngressClass).Spec.Controller, field.NewPath("spec", "controller"))
		return append(errs, validateIngressClass(o)...)
	case *networkingv1.NetworkPolicy:
		return validateNetworkPolicy(o, networkPolicyCIDRs(old.(*networkingv1.NetworkPolicy)))
	case *discoveryv1.EndpointSlice:
		return validateEndpointSlice(o, old.(*discoveryv1.EndpointSlice))
	}
	return nil
}
