package apis

import (
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func validHPA(mut func(*autoscalingv2.HorizontalPodAutoscaler)) runtime.Object {
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "h", Namespace: "ns"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}, MaxReplicas: 3,
		},
	}
	mut(h)
	Default(h)
	return h
}

func validSlice(mut func(*resourcev1.ResourceSlice)) runtime.Object {
	s := &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Spec: resourcev1.ResourceSliceSpec{
			Driver: "gpu.example.com", NodeName: ptr.To("node-a"), Pool: resourcev1.ResourcePool{Name: "node-a", ResourceSliceCount: 1},
			Devices: []resourcev1.Device{{Name: "gpu-0"}},
		},
	}
	mut(s)
	return s
}

func TestValidateMoreKinds(t *testing.T) {
	tests := []struct {
		name string
		obj  runtime.Object
		want []string // "type field"; empty: valid
	}{
		{"valid HPA", validHPA(func(*autoscalingv2.HorizontalPodAutoscaler) {}), nil},
		{"HPA min above max", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptr.To[int32](5) }),
			[]string{"FieldValueInvalid spec.maxReplicas"}},
		{"HPA without maxReplicas", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MaxReplicas = 0 }),
			// The declarative bound comes last, as upstream answers.
			[]string{"FieldValueInvalid spec.maxReplicas", "FieldValueRequired spec.maxReplicas"}},
		{"HPA without target", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{}
		}),
			[]string{"FieldValueRequired spec.scaleTargetRef.kind", "FieldValueRequired spec.scaleTargetRef.name", "FieldValueInvalid spec.scaleTargetRef.apiVersion"}},
		{"HPA zero utilization", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Metrics = []autoscalingv2.MetricSpec{cpuUtilization(0)}
		}), []string{"FieldValueInvalid spec.metrics[0].resource.target.averageUtilization"}},
		{"HPA behavior out of bounds", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To[int32](4000),
				Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: "Bogus", Value: 1, PeriodSeconds: 2000}},
			}}
		}), []string{"FieldValueInvalid spec.behavior.scaleUp.stabilizationWindowSeconds", "FieldValueNotSupported spec.behavior.scaleUp.policies[0].type",
			"FieldValueInvalid spec.behavior.scaleUp.policies[0].periodSeconds"}},
		{"valid slice", validSlice(func(*resourcev1.ResourceSlice) {}), nil},
		{"slice for no node", validSlice(func(s *resourcev1.ResourceSlice) { s.Spec.NodeName = nil }), []string{"FieldValueRequired spec"}},
		{"slice for a node and all nodes", validSlice(func(s *resourcev1.ResourceSlice) { s.Spec.AllNodes = ptr.To(true) }), []string{"FieldValueInvalid spec"}},
		{"slice with a duplicate device", validSlice(func(s *resourcev1.ResourceSlice) {
			s.Spec.Devices = append(s.Spec.Devices, resourcev1.Device{Name: "gpu-0"})
		}), []string{"FieldValueDuplicate spec.devices[1]"}},
		{"slice without pool size", validSlice(func(s *resourcev1.ResourceSlice) { s.Spec.Pool.ResourceSliceCount = 0 }),
			[]string{"FieldValueInvalid spec.pool.resourceSliceCount"}},
		{"CSIDriver with a short token", func() runtime.Object {
			d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "csi.example.com"}, Spec: storagev1.CSIDriverSpec{
				TokenRequests: []storagev1.TokenRequest{{Audience: "a", ExpirationSeconds: ptr.To[int64](60)}, {Audience: "a"}},
			}}
			Default(d)
			return d
		}(), []string{"FieldValueInvalid spec.tokenRequests[0].expirationSeconds", "FieldValueDuplicate spec.tokenRequests[1].audience"}},
		{"VolumeAttachment with two sources", &storagev1.VolumeAttachment{Spec: storagev1.VolumeAttachmentSpec{
			Attacher: "csi.example.com", NodeName: "n",
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv"), InlineVolumeSpec: &corev1.PersistentVolumeSpec{}},
		}}, []string{"FieldValueForbidden spec.source"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Validate(tt.obj)
			var got []string
			for _, e := range errs {
				got = append(got, string(e.Type)+" "+e.Field)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("errors %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("error %d = %s, want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestValidateMoreUpdates(t *testing.T) {
	claim := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}, Spec: resourcev1.ResourceClaimSpec{
		Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{Name: "gpu", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "gpu"}}}},
	}}
	Default(claim)
	changed := claim.DeepCopy()
	changed.Spec.Devices.Requests[0].Exactly.Count = 2
	slice := validSlice(func(*resourcev1.ResourceSlice) {}).(*resourcev1.ResourceSlice)
	moved := slice.DeepCopy()
	moved.Spec.NodeName = ptr.To("node-b")
	moved.Spec.Pool.Name = "node-b"
	vac := &storagev1.VolumeAttributesClass{ObjectMeta: metav1.ObjectMeta{Name: "gold"}, DriverName: "d", Parameters: map[string]string{"a": "1"}}
	vac2 := vac.DeepCopy()
	vac2.Parameters["a"] = "2"
	tests := []struct {
		name     string
		obj, old runtime.Object
		want     field.ErrorList
	}{
		{"unchanged claim", claim, claim, nil},
		{"claim spec changed", changed, claim, field.ErrorList{field.Invalid(field.NewPath("spec"), changed.Spec, "field is immutable")}},
		{"slice moved", moved, slice, field.ErrorList{
			field.Invalid(field.NewPath("spec", "pool", "name"), "node-b", "field is immutable"),
			field.Invalid(field.NewPath("spec", "nodeName"), moved.Spec.NodeName, "field is immutable"),
		}},
		{"class parameters changed", vac2, vac, field.ErrorList{field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden.")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := validateMoreUpdate(tt.obj, tt.old)
			if len(got) != len(tt.want) {
				t.Fatalf("errors %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].Type != tt.want[i].Type || got[i].Field != tt.want[i].Field || got[i].Detail != tt.want[i].Detail {
					t.Errorf("error %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
