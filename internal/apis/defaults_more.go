package apis

import (
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// defaultMore fills upstream's defaults for the storage, resource and
// autoscaling kinds registered in registry_more.go.
func defaultMore(obj runtime.Object) {
	switch o := obj.(type) {
	case *storagev1.CSIDriver:
		defaultCSIDriver(&o.Spec)
	case *storagev1.StorageClass:
		if o.ReclaimPolicy == nil {
			o.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimDelete)
		}
		if o.VolumeBindingMode == nil {
			o.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
		}
	case *autoscalingv1.HorizontalPodAutoscaler:
		// The CPU target default is applied in the conversion to v2,
		// which sees the metrics annotation too.
		o.Spec.MinReplicas = orDefault(o.Spec.MinReplicas, 1)
	case *autoscalingv2.HorizontalPodAutoscaler:
		defaultHPAv2(o)
	case *certificatesv1.PodCertificateRequest:
		// A day, as the pod certificate projection documents.
		o.Spec.MaxExpirationSeconds = orDefault(o.Spec.MaxExpirationSeconds, 86400)
	case *resourcev1.ResourceClaim:
		defaultDeviceClaim(&o.Spec.Devices)
	case *resourcev1.ResourceClaimTemplate:
		defaultDeviceClaim(&o.Spec.Spec.Devices)
	case *resourcev1.DeviceTaintRule:
		if o.Spec.Taint.TimeAdded == nil {
			o.Spec.Taint.TimeAdded = &metav1.Time{Time: time.Now().Truncate(time.Second)}
		}
	case *resourcev1.ResourceSlice:
		for i := range o.Spec.Devices {
			for j := range o.Spec.Devices[i].Taints {
				if t := &o.Spec.Devices[i].Taints[j]; t.TimeAdded == nil {
					t.TimeAdded = &metav1.Time{Time: time.Now().Truncate(time.Second)}
				}
			}
		}
	}
}

func defaultCSIDriver(s *storagev1.CSIDriverSpec) {
	s.AttachRequired = orDefault(s.AttachRequired, true)
	s.PodInfoOnMount = orDefault(s.PodInfoOnMount, false)
	s.StorageCapacity = orDefault(s.StorageCapacity, false)
	s.FSGroupPolicy = orDefault(s.FSGroupPolicy, storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy)
	if len(s.VolumeLifecycleModes) == 0 {
		s.VolumeLifecycleModes = []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}
	}
	s.RequiresRepublish = orDefault(s.RequiresRepublish, false)
	s.SELinuxMount = orDefault(s.SELinuxMount, false)
	s.PreventPodSchedulingIfMissing = orDefault(s.PreventPodSchedulingIfMissing, false)
}

// defaultHPAv2 sets minReplicas, the CPU target of an HPA without metrics,
// and completes a behavior given in part.
func defaultHPAv2(h *autoscalingv2.HorizontalPodAutoscaler) {
	h.Spec.MinReplicas = orDefault(h.Spec.MinReplicas, 1)
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilization(defaultCPUUtilization)}
	}
	if b := h.Spec.Behavior; b != nil {
		b.ScaleUp = completeRules(b.ScaleUp, scaleUpDefaults())
		b.ScaleDown = completeRules(b.ScaleDown, scaleDownDefaults())
	}
}

// scaleUpDefaults: no stabilization; the larger of 4 pods or 100 % per 15 s.
func scaleUpDefaults() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To[int32](0),
		SelectPolicy:               ptr.To(autoscalingv2.MaxChangePolicySelect),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
}

// scaleDownDefaults: 100 % per 15 s; the stabilization window stays unset
// (the controller's flag decides it).
func scaleDownDefaults() *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{
		SelectPolicy: ptr.To(autoscalingv2.MaxChangePolicySelect),
		Policies:     []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}},
	}
}

// completeRules keeps what r sets and takes the rest from def.
func completeRules(r, def *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if r == nil {
		return def
	}
	if r.SelectPolicy != nil {
		def.SelectPolicy = r.SelectPolicy
	}
	if r.StabilizationWindowSeconds != nil {
		def.StabilizationWindowSeconds = r.StabilizationWindowSeconds
	}
	if r.Policies != nil {
		def.Policies = r.Policies
	}
	if r.Tolerance != nil {
		def.Tolerance = r.Tolerance
	}
	return def
}

func defaultDeviceClaim(c *resourcev1.DeviceClaim) {
	for i := range c.Requests {
		r := &c.Requests[i]
		if e := r.Exactly; e != nil {
			defaultAllocation(&e.AllocationMode, &e.Count)
			defaultTolerations(e.Tolerations)
		}
		for j := range r.FirstAvailable {
			s := &r.FirstAvailable[j]
			defaultAllocation(&s.AllocationMode, &s.Count)
			defaultTolerations(s.Tolerations)
		}
	}
}

func defaultAllocation(mode *resourcev1.DeviceAllocationMode, count *int64) {
	if *mode == "" {
		*mode = resourcev1.DeviceAllocationModeExactCount
	}
	if *mode == resourcev1.DeviceAllocationModeExactCount && *count == 0 {
		*count = 1
	}
}

func defaultTolerations(ts []resourcev1.DeviceToleration) {
	for i := range ts {
		if ts[i].Operator == "" {
			ts[i].Operator = resourcev1.DeviceTolerationOpEqual
		}
	}
}
