package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// StorageClassLister lists every StorageClass. The classes may be shared
// with a cache: the caller only reads them.
type StorageClassLister interface {
	ListStorageClasses() []*storagev1.StorageClass
}

var (
	pvcsResource = corev1.Resource("persistentvolumeclaims")
	pvsResource  = corev1.Resource("persistentvolumes")
)

const (
	annDefaultStorageClass     = "storageclass.kubernetes.io/is-default-class"
	annBetaDefaultStorageClass = "storageclass.beta.kubernetes.io/is-default-class"
	pvcProtectionFinalizer     = "kubernetes.io/pvc-protection"
	pvProtectionFinalizer      = "kubernetes.io/pv-protection"
)

// DefaultStorageClass is upstream's plugin of that name: a claim created
// with no class (storageClassName unset and no beta class annotation; an
// empty name means "no class" and is kept) gets the default class, the
// newest of those annotated is-default-class "true".
type DefaultStorageClass struct{ classes StorageClassLister }

// NewDefaultStorageClass returns the plugin reading classes.
func NewDefaultStorageClass(classes StorageClassLister) *DefaultStorageClass {
	return &DefaultStorageClass{classes: classes}
}

// Name implements Mutator.
func (*DefaultStorageClass) Name() string { return "DefaultStorageClass" }

// Admit implements Mutator.
func (p *DefaultStorageClass) Admit(_ context.Context, a *Attributes) error {
	if a.Operation != Create || a.Subresource != "" || a.Resource.GroupResource() != pvcsResource {
		return nil
	}
	pvc, ok := a.Object.(*corev1.PersistentVolumeClaim)
	if !ok {
		return apierrors.NewInternalError(fmt.Errorf("Expected PersistentVolumeClaim resource, got: %v", a.Kind))
	}
	if _, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok || pvc.Spec.StorageClassName != nil {
		return nil
	}
	if def := defaultStorageClass(p.classes); def != nil {
		name := def.Name
		pvc.Spec.StorageClassName = &name
	}
	return nil
}

// defaultStorageClass is the newest class marked default (then the first
// by name), nil if none is.
func defaultStorageClass(classes StorageClassLister) *storagev1.StorageClass {
	if classes == nil {
		return nil
	}
	var defaults []*storagev1.StorageClass
	for _, c := range classes.ListStorageClasses() {
		if c.Annotations[annDefaultStorageClass] == "true" || c.Annotations[annBetaDefaultStorageClass] == "true" {
			defaults = append(defaults, c)
		}
	}
	if len(defaults) == 0 {
		return nil
	}
	sort.Slice(defaults, func(i, j int) bool {
		ti, tj := defaults[i].CreationTimestamp.UnixNano(), defaults[j].CreationTimestamp.UnixNano()
		if ti == tj {
			return defaults[i].Name < defaults[j].Name
		}
		return ti > tj
	})
	return defaults[0]
}

// StorageObjectInUseProtection is upstream's plugin of that name: claims
// and volumes are created with the protection finalizers that keep them
// while in use (the pvc- and pv-protection controllers remove them).
type StorageObjectInUseProtection struct{}

// NewStorageObjectInUseProtection returns the plugin.
func NewStorageObjectInUseProtection() StorageObjectInUseProtection {
	return StorageObjectInUseProtection{}
}

// Name implements Mutator.
func (StorageObjectInUseProtection) Name() string { return "StorageObjectInUseProtection" }

// Admit implements Mutator.
func (StorageObjectInUseProtection) Admit(_ context.Context, a *Attributes) error {
	if a.Operation != Create || a.Subresource != "" {
		return nil
	}
	switch a.Resource.GroupResource() {
	case pvcsResource:
		if pvc, ok := a.Object.(*corev1.PersistentVolumeClaim); ok && !slices.Contains(pvc.Finalizers, pvcProtectionFinalizer) {
			pvc.Finalizers = append(pvc.Finalizers, pvcProtectionFinalizer)
		}
	case pvsResource:
		if pv, ok := a.Object.(*corev1.PersistentVolume); ok && !slices.Contains(pv.Finalizers, pvProtectionFinalizer) {
			pv.Finalizers = append(pv.Finalizers, pvProtectionFinalizer)
		}
	}
	return nil
}

// PersistentVolumeClaimResize is upstream's plugin of that name: a claim
// may grow only when bound and only when its class (unchanged) allows
// volume expansion.
type PersistentVolumeClaimResize struct{ classes StorageClassLister }

// NewPersistentVolumeClaimResize returns the plugin reading classes.
func NewPersistentVolumeClaimResize(classes StorageClassLister) *PersistentVolumeClaimResize {
	return &PersistentVolumeClaimResize{classes: classes}
}

// Name implements Validator.
func (*PersistentVolumeClaimResize) Name() string { return "PersistentVolumeClaimResize" }

// Validate implements Validator.
func (p *PersistentVolumeClaimResize) Validate(_ context.Context, a *Attributes) error {
	if a.Operation != Update || a.Subresource != "" || a.Resource.GroupResource() != pvcsResource {
		return nil
	}
	pvc, ok := a.Object.(*corev1.PersistentVolumeClaim)
	old, ok2 := a.OldObject.(*corev1.PersistentVolumeClaim)
	if !ok || !ok2 {
		return nil
	}
	newSize, oldSize := pvc.Spec.Resources.Requests[corev1.ResourceStorage], old.Spec.Resources.Requests[corev1.ResourceStorage]
	if newSize.Cmp(oldSize) <= 0 {
		return nil
	}
	if old.Status.Phase != corev1.ClaimBound {
		return apierrors.NewForbidden(pvcsResource, a.Name, errors.New("Only bound persistent volume claims can be expanded"))
	}
	if !p.allowsExpansion(pvc, old) {
		return apierrors.NewForbidden(pvcsResource, a.Name, errors.New("only dynamically provisioned pvc can be resized and "+
			"the storageclass that provisions the pvc must support resize"))
	}
	return nil
}

func (p *PersistentVolumeClaimResize) allowsExpansion(pvc, old *corev1.PersistentVolumeClaim) bool {
	name, oldName := pvcClass(pvc), pvcClass(old)
	if name == "" || name != oldName || p.classes == nil {
		return false
	}
	for _, c := range p.classes.ListStorageClasses() {
		if c.Name == name {
			return c.AllowVolumeExpansion != nil && *c.AllowVolumeExpansion
		}
	}
	return false
}

// pvcClass is the claim's class, the beta annotation first.
func pvcClass(pvc *corev1.PersistentVolumeClaim) string {
	if c, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		return c
	}
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return ""
}
