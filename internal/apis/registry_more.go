package apis

import (
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	certificatesv1 "k8s.io/api/certificates/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// moreResources returns the storage, dynamic resource allocation,
// autoscaling, certificate and storage migration resources upstream serves
// by default, with their behaviour attached.
func moreResources() []*Resource {
	st := storagev1.SchemeGroupVersion
	ra := resourcev1.SchemeGroupVersion
	certs := certificatesv1.SchemeGroupVersion
	rs := []*Resource{
		def(st, "csidrivers", "csidriver", "CSIDriver", false,
			func() runtime.Object { return &storagev1.CSIDriver{} }, func() runtime.Object { return &storagev1.CSIDriverList{} }),
		def(st, "csinodes", "csinode", "CSINode", false,
			func() runtime.Object { return &storagev1.CSINode{} }, func() runtime.Object { return &storagev1.CSINodeList{} }).with("status"),
		def(st, "csistoragecapacities", "csistoragecapacity", "CSIStorageCapacity", true,
			func() runtime.Object { return &storagev1.CSIStorageCapacity{} }, func() runtime.Object { return &storagev1.CSIStorageCapacityList{} }),
		def(st, "volumeattachments", "volumeattachment", "VolumeAttachment", false,
			func() runtime.Object { return &storagev1.VolumeAttachment{} }, func() runtime.Object { return &storagev1.VolumeAttachmentList{} }).with("status"),
		def(st, "volumeattributesclasses", "volumeattributesclass", "VolumeAttributesClass", false,
			func() runtime.Object { return &storagev1.VolumeAttributesClass{} }, func() runtime.Object { return &storagev1.VolumeAttributesClassList{} }, "vac"),

		def(ra, "deviceclasses", "deviceclass", "DeviceClass", false,
			func() runtime.Object { return &resourcev1.DeviceClass{} }, func() runtime.Object { return &resourcev1.DeviceClassList{} }),
		def(ra, "devicetaintrules", "devicetaintrule", "DeviceTaintRule", false,
			func() runtime.Object { return &resourcev1.DeviceTaintRule{} }, func() runtime.Object { return &resourcev1.DeviceTaintRuleList{} }).with("status"),
		def(ra, "resourceclaims", "resourceclaim", "ResourceClaim", true,
			func() runtime.Object { return &resourcev1.ResourceClaim{} }, func() runtime.Object { return &resourcev1.ResourceClaimList{} }).with("status"),
		def(ra, "resourceclaimtemplates", "resourceclaimtemplate", "ResourceClaimTemplate", true,
			func() runtime.Object { return &resourcev1.ResourceClaimTemplate{} }, func() runtime.Object { return &resourcev1.ResourceClaimTemplateList{} }),
		def(ra, "resourceslices", "resourceslice", "ResourceSlice", false,
			func() runtime.Object { return &resourcev1.ResourceSlice{} }, func() runtime.Object { return &resourcev1.ResourceSliceList{} }),

		// One HorizontalPodAutoscaler, stored as v2 and served in both versions.
		def(autoscalingv2.SchemeGroupVersion, "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true,
			func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
			func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscalerList{} }, "hpa").with("status").inAll(),
		def(autoscalingv1.SchemeGroupVersion, "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true,
			func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscaler{} },
			func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscalerList{} }, "hpa").with("status").inAll().storedAs(hpaStorage),

		def(certs, "clustertrustbundles", "clustertrustbundle", "ClusterTrustBundle", false,
			func() runtime.Object { return &certificatesv1.ClusterTrustBundle{} }, func() runtime.Object { return &certificatesv1.ClusterTrustBundleList{} }),
		def(certs, "podcertificaterequests", "podcertificaterequest", "PodCertificateRequest", true,
			func() runtime.Object { return &certificatesv1.PodCertificateRequest{} }, func() runtime.Object { return &certificatesv1.PodCertificateRequestList{} }).with("status"),

		def(storagemigrationv1.SchemeGroupVersion, "storageversionmigrations", "storageversionmigration", "StorageVersionMigration", false,
			func() runtime.Object { return &storagemigrationv1.StorageVersionMigration{} },
			func() runtime.Object { return &storagemigrationv1.StorageVersionMigrationList{} }).with("status"),
	}
	for _, r := range rs {
		r.Default = Default
		r.Validate = Validate
		r.ValidateUpdate = ValidateUpdate
		r.TableColumns, r.TableRow = tablesMore(r.Kind)
		r.FieldSet = fieldSetFor(r)
	}
	return rs
}

func (r *Resource) storedAs(s *StorageForm) *Resource {
	r.Storage = s
	return r
}
