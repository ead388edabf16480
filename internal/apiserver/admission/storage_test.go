package admission

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type storageClasses []*storagev1.StorageClass

func (l storageClasses) ListStorageClasses() []*storagev1.StorageClass { return l }

func storageClass(name, isDefault string, age time.Duration, expand *bool) *storagev1.StorageClass {
	c := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name,
		CreationTimestamp: metav1.NewTime(time.Unix(1_000_000, 0).Add(-age))}, AllowVolumeExpansion: expand}
	if isDefault != "" {
		c.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": isDefault}
	}
	return c
}

var pvcsGVR = corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims")

func TestDefaultStorageClass(t *testing.T) {
	tests := []struct {
		name    string
		classes storageClasses
		op      Operation
		class   *string
		ann     map[string]string
		want    *string
	}{
		{name: "the default class is set", op: Create,
			classes: storageClasses{storageClass("slow", "", 0, nil), storageClass("local-path", "true", time.Hour, nil)},
			want:    ptr.To("local-path")},
		{name: "of several defaults, the newest", op: Create,
			classes: storageClasses{storageClass("old", "true", time.Hour, nil), storageClass("new", "true", time.Minute, nil)},
			want:    ptr.To("new")},
		{name: "an empty class means none and is kept", op: Create, class: ptr.To(""),
			classes: storageClasses{storageClass("local-path", "true", 0, nil)}, want: ptr.To("")},
		{name: "a named class is kept", op: Create, class: ptr.To("fast"),
			classes: storageClasses{storageClass("local-path", "true", 0, nil)}, want: ptr.To("fast")},
		{name: "the beta annotation counts as a class", op: Create,
			ann:     map[string]string{"volume.beta.kubernetes.io/storage-class": "x"},
			classes: storageClasses{storageClass("local-path", "true", 0, nil)}},
		{name: "no default: unset", op: Create, classes: storageClasses{storageClass("a", "false", 0, nil)}},
		{name: "updates are left alone", op: Update, classes: storageClasses{storageClass("local-path", "true", 0, nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Annotations: tt.ann},
				Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: tt.class}}
			a := &Attributes{Operation: tt.op, Resource: pvcsGVR, Namespace: "ns", Name: "d", Object: pvc}
			if err := NewDefaultStorageClass(tt.classes).Admit(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			got := pvc.Spec.StorageClassName
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Fatalf("storageClassName %v, want %v", ptr.Deref(got, "<nil>"), ptr.Deref(tt.want, "<nil>"))
			}
		})
	}
}

func TestStorageObjectInUseProtection(t *testing.T) {
	p := NewStorageObjectInUseProtection()
	pvc := &corev1.PersistentVolumeClaim{}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Finalizers: []string{"kubernetes.io/pv-protection"}}}
	for _, a := range []*Attributes{
		{Operation: Create, Resource: pvcsGVR, Object: pvc},
		{Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("persistentvolumes"), Object: pv},
	} {
		if err := p.Admit(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(pvc.Finalizers, []string{"kubernetes.io/pvc-protection"}) {
		t.Errorf("claim finalizers %v", pvc.Finalizers)
	}
	if !slices.Equal(pv.Finalizers, []string{"kubernetes.io/pv-protection"}) {
		t.Errorf("volume finalizers %v (no duplicate expected)", pv.Finalizers)
	}
	upd := &corev1.PersistentVolumeClaim{}
	_ = p.Admit(context.Background(), &Attributes{Operation: Update, Resource: pvcsGVR, Object: upd})
	if len(upd.Finalizers) != 0 {
		t.Errorf("update got finalizers %v", upd.Finalizers)
	}
}

func TestPersistentVolumeClaimResize(t *testing.T) {
	classes := storageClasses{storageClass("grow", "", 0, ptr.To(true)), storageClass("fixed", "", 0, nil)}
	claim := func(class string, size string, phase corev1.PersistentVolumeClaimPhase) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(class), Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}},
			Status: corev1.PersistentVolumeClaimStatus{Phase: phase},
		}
	}
	tests := []struct {
		name     string
		old, new *corev1.PersistentVolumeClaim
		wantErr  string
	}{
		{name: "growing with an expandable class", old: claim("grow", "1Gi", corev1.ClaimBound), new: claim("grow", "2Gi", corev1.ClaimBound)},
		{name: "growing without", old: claim("fixed", "1Gi", corev1.ClaimBound), new: claim("fixed", "2Gi", corev1.ClaimBound),
			wantErr: `persistentvolumeclaims "d" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize`},
		{name: "an unknown class", old: claim("gone", "1Gi", corev1.ClaimBound), new: claim("gone", "2Gi", corev1.ClaimBound),
			wantErr: "must support resize"},
		{name: "an unbound claim", old: claim("grow", "1Gi", corev1.ClaimPending), new: claim("grow", "2Gi", corev1.ClaimPending),
			wantErr: "Only bound persistent volume claims can be expanded"},
		{name: "same size passes", old: claim("fixed", "1Gi", corev1.ClaimBound), new: claim("fixed", "1Gi", corev1.ClaimBound)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Attributes{Operation: Update, Resource: pvcsGVR, Namespace: "ns", Name: "d", Object: tt.new, OldObject: tt.old}
			err := NewPersistentVolumeClaimResize(classes).Validate(context.Background(), a)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err %v, want 403 containing %q", err, tt.wantErr)
			}
		})
	}
}
