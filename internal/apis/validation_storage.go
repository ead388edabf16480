package apis

import (
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// csiNodeIDMaxLength bounds a CSINode driver's nodeID.
const csiNodeIDMaxLength = 256

// validateCSIDriverName checks a CSI driver name (attacher, CSINode driver):
// a DNS subdomain of at most 63 characters, case-insensitive.
func validateCSIDriverName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	if len(name) > 63 {
		errs = append(errs, field.TooLong(p, "", 63))
	}
	for _, msg := range validation.IsDNS1123Subdomain(strings.ToLower(name)) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

func requiredFlag(b *bool, p *field.Path) field.ErrorList {
	if b == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	return nil
}

func validateCSIDriver(d *storagev1.CSIDriver) field.ErrorList {
	spec := field.NewPath("spec")
	s := &d.Spec
	// Upstream spells the path "attachedRequired".
	errs := requiredFlag(s.AttachRequired, spec.Child("attachedRequired"))
	errs = append(errs, requiredFlag(s.PodInfoOnMount, spec.Child("podInfoOnMount"))...)
	errs = append(errs, requiredFlag(s.StorageCapacity, spec.Child("storageCapacity"))...)
	if s.FSGroupPolicy != nil {
		valid := []string{string(storagev1.FileFSGroupPolicy), string(storagev1.NoneFSGroupPolicy), string(storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy)}
		if !sets.New(valid...).Has(string(*s.FSGroupPolicy)) {
			errs = append(errs, field.NotSupported(spec.Child("fsGroupPolicy"), *s.FSGroupPolicy, valid))
		}
	} else {
		errs = append(errs, field.Required(spec.Child("fsGroupPolicy"), ""))
	}
	audiences := sets.New[string]()
	for i, t := range s.TokenRequests {
		p := spec.Child("tokenRequests").Index(i)
		if audiences.Has(t.Audience) {
			errs = append(errs, field.Duplicate(p.Child("audience"), t.Audience))
		}
		audiences.Insert(t.Audience)
		if t.ExpirationSeconds != nil {
			switch e := *t.ExpirationSeconds; {
			case e < 600:
				errs = append(errs, field.Invalid(p.Child("expirationSeconds"), e, "may not specify a duration less than 10 minutes"))
			case e > math.MaxUint32:
				errs = append(errs, field.Invalid(p.Child("expirationSeconds"), e, "may not specify a duration larger than 2^32 seconds"))
			}
		}
	}
	modes := []string{string(storagev1.VolumeLifecyclePersistent), string(storagev1.VolumeLifecycleEphemeral)}
	for _, m := range s.VolumeLifecycleModes {
		if !sets.New(modes...).Has(string(m)) {
			errs = append(errs, field.NotSupported(spec.Child("volumeLifecycleModes"), m, modes))
		}
	}
	errs = append(errs, requiredFlag(s.SELinuxMount, spec.Child("seLinuxMount"))...)
	if p := s.NodeAllocatableUpdatePeriodSeconds; p != nil && *p < 10 {
		errs = append(errs, field.Invalid(spec.Child("nodeAllocatableUpdatePeriodSeconds"), *p, "must be greater than or equal to 10 seconds"))
	}
	if b := s.ServiceAccountTokenInSecrets; b != nil && len(s.TokenRequests) == 0 {
		errs = append(errs, field.Invalid(spec.Child("serviceAccountTokenInSecrets"), *b, "serviceAccountTokenInSecrets is set but no tokenRequests are specified"))
	}
	return append(errs, requiredFlag(s.PreventPodSchedulingIfMissing, spec.Child("preventPodSchedulingIfMissing"))...)
}

func validateCSINode(n *storagev1.CSINode) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i, d := range n.Spec.Drivers {
		p := field.NewPath("spec", "drivers").Index(i)
		errs = append(errs, validateCSIDriverName(d.Name, p.Child("name"))...)
		if d.NodeID == "" {
			errs = append(errs, field.Required(p.Child("nodeID"), ""))
		}
		if len(d.NodeID) > csiNodeIDMaxLength {
			errs = append(errs, field.Invalid(p.Child("nodeID"), d.NodeID, fmt.Sprintf("must be %d characters or less", csiNodeIDMaxLength)))
		}
		if d.Allocatable != nil && d.Allocatable.Count != nil && *d.Allocatable.Count < 0 {
			errs = append(errs, field.Invalid(p.Child("allocatable", "count"), *d.Allocatable.Count, "must be greater than or equal to 0"))
		}
		if names.Has(d.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), d.Name))
		}
		names.Insert(d.Name)
		keys := sets.New[string]()
		for _, k := range d.TopologyKeys {
			if k == "" {
				errs = append(errs, field.Required(p, k))
			}
			if keys.Has(k) {
				errs = append(errs, field.Duplicate(p, k))
			}
			keys.Insert(k)
			for _, msg := range validation.IsQualifiedName(k) {
				errs = append(errs, field.Invalid(p, k, msg))
			}
		}
	}
	return append(errs, validateCSINodeStatus(&n.Status)...)
}

// validateCSINodeStatus checks the storage health a CSI driver reports:
// one entry per driver, at most 16 conditions each.
func validateCSINodeStatus(st *storagev1.CSINodeStatus) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("status", "storageHealth")
	seen := sets.New[string]()
	statuses := []string{string(storagev1.StorageDegraded), string(storagev1.StorageUnreachable)}
	accessModes := []string{string(corev1.ReadOnlyMany), string(corev1.ReadWriteMany), string(corev1.ReadWriteOnce), string(corev1.ReadWriteOncePod)}
	volumeModes := []string{string(corev1.PersistentVolumeFilesystem), string(corev1.PersistentVolumeBlock)}
	for i, h := range st.StorageHealth {
		hp := p.Index(i)
		if seen.Has(h.Name) {
			errs = append(errs, field.Duplicate(hp, h.Name))
		}
		seen.Insert(h.Name)
		errs = append(errs, validateCSIDriverName(h.Name, hp.Child("name"))...)
		if len(h.HealthConditions) > 16 {
			errs = append(errs, field.TooMany(hp.Child("healthConditions"), len(h.HealthConditions), 16))
			continue
		}
		for j, c := range h.HealthConditions {
			cp := hp.Child("healthConditions").Index(j)
			if !sets.New(statuses...).Has(string(c.Status)) {
				errs = append(errs, field.NotSupported(cp.Child("status"), c.Status, statuses))
			}
			if c.Reason == "" {
				errs = append(errs, field.Required(cp.Child("reason"), ""))
			} else {
				errs = append(errs, invalidMsgs(cp.Child("reason"), c.Reason, metav1validation.IsValidConditionReason(c.Reason))...)
				if len(c.Reason) > 256 {
					errs = append(errs, field.TooLong(cp.Child("reason"), c.Reason, 256))
				}
			}
			if len(c.Message) > 1024 {
				errs = append(errs, field.TooLong(cp.Child("message"), c.Message, 1024))
			}
			if c.AccessMode != nil && !sets.New(accessModes...).Has(string(*c.AccessMode)) {
				errs = append(errs, field.NotSupported(cp.Child("accessMode"), *c.AccessMode, accessModes))
			}
			if c.VolumeMode != nil && !sets.New(volumeModes...).Has(string(*c.VolumeMode)) {
				errs = append(errs, field.NotSupported(cp.Child("volumeMode"), *c.VolumeMode, volumeModes))
			}
		}
	}
	return errs
}

// validateCSINodeUpdate: a registered driver's entry may change only in its
// allocatable count.
func validateCSINodeUpdate(n, old *storagev1.CSINode) field.ErrorList {
	var errs field.ErrorList
	for _, o := range old.Spec.Drivers {
		for _, d := range n.Spec.Drivers {
			if o.Name != d.Name {
				continue
			}
			a, b := d.DeepCopy(), o.DeepCopy()
			a.Allocatable, b.Allocatable = nil, nil
			if !equality.Semantic.DeepEqual(a, b) {
				errs = append(errs, field.Invalid(field.NewPath("spec", "drivers"), *a, "field is immutable"))
			}
		}
	}
	return errs
}

func validateCSIStorageCapacity(c *storagev1.CSIStorageCapacity) field.ErrorList {
	errs := metav1validation.ValidateLabelSelector(c.NodeTopology, metav1validation.LabelSelectorValidationOptions{}, field.NewPath("nodeTopology"))
	for _, msg := range validation.IsDNS1123Subdomain(c.StorageClassName) {
		errs = append(errs, field.Invalid(field.NewPath("storageClassName"), c.StorageClassName, msg))
	}
	if c.Capacity != nil && c.Capacity.Sign() < 0 {
		errs = append(errs, field.Invalid(field.NewPath("capacity"), c.Capacity.String(), "must be greater than or equal to 0"))
	}
	return errs
}

func validateCSIStorageCapacityUpdate(c, old *storagev1.CSIStorageCapacity) field.ErrorList {
	var errs field.ErrorList
	if !equality.Semantic.DeepEqual(c.NodeTopology, old.NodeTopology) {
		errs = append(errs, field.Invalid(field.NewPath("nodeTopology"), c.NodeTopology, "field is immutable"))
	}
	if c.StorageClassName != old.StorageClassName {
		errs = append(errs, field.Invalid(field.NewPath("storageClassName"), c.StorageClassName, "field is immutable"))
	}
	return errs
}

func validateVolumeAttachment(va *storagev1.VolumeAttachment) field.ErrorList {
	spec := field.NewPath("spec")
	src := va.Spec.Source
	var errs field.ErrorList
	const oneSource = "must specify exactly one of inlineVolumeSpec and persistentVolumeName"
	switch {
	case src.InlineVolumeSpec == nil && src.PersistentVolumeName == nil:
		errs = append(errs, field.Required(spec.Child("source"), oneSource))
	case src.InlineVolumeSpec != nil && src.PersistentVolumeName != nil:
		errs = append(errs, field.Forbidden(spec.Child("source"), oneSource))
	case src.PersistentVolumeName != nil && *src.PersistentVolumeName == "":
		errs = append(errs, field.Required(spec.Child("source", "persistentVolumeName"), "must specify non empty persistentVolumeName"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(va.Spec.NodeName) {
		errs = append(errs, field.Invalid(spec.Child("nodeName"), va.Spec.NodeName, msg))
	}
	st := field.NewPath("status")
	if e := va.Status.AttachError; e != nil && len(e.Message) > 1024 {
		errs = append(errs, field.TooLong(st.Child("attachError", "message"), "", 1024))
	}
	if e := va.Status.DetachError; e != nil && len(e.Message) > 1024 {
		errs = append(errs, field.TooLong(st.Child("detachError", "message"), "", 1024))
	}
	if pv := src.PersistentVolumeName; pv != nil && *pv != "" {
		for _, msg := range validation.IsDNS1123Subdomain(*pv) {
			errs = append(errs, field.Invalid(spec.Child("source", "persistentVolumeName"), *pv, msg))
		}
	}
	// Upstream checks the attacher declaratively, after the rules above,
	// and as a DNS subdomain that may hold upper-case letters.
	ap := spec.Child("attacher")
	switch a := va.Spec.Attacher; {
	case a == "":
		errs = append(errs, field.Required(ap, ""))
	default:
		if len(a) > 63 {
			errs = append(errs, field.TooLong(ap, "", 63))
		}
		//lint:ignore SA1019 upstream's rule for attacher names is the caseless one.
		msgs := content.IsDNS1123SubdomainCaseless(a)
		errs = append(errs, invalidMsgs(ap, a, msgs)...)
	}
	return errs
}

func validateVolumeAttributesClass(c *storagev1.VolumeAttributesClass) field.ErrorList {
	var errs field.ErrorList
	if c.DriverName == "" {
		errs = append(errs, field.Required(field.NewPath("driverName"), ""))
	}
	errs = append(errs, validateProvisionerName(c.DriverName, field.NewPath("driverName"))...)
	return append(errs, validateClassParameters(c.Parameters, field.NewPath("parameters"))...)
}

// validateClassParameters: at most 512 keys, none empty, 256 KiB in all,
// and at least one (a VolumeAttributesClass must say something).
func validateClassParameters(params map[string]string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(params) > 512 {
		errs = append(errs, field.TooLong(p, "", 512))
	}
	size := 0
	for k, v := range params {
		if k == "" {
			errs = append(errs, field.Invalid(p, k, "field can not be empty."))
		}
		size += len(k) + len(v)
	}
	if size > 256*1024 {
		errs = append(errs, field.TooLong(p, "", 256*1024))
	}
	if len(params) == 0 {
		errs = append(errs, field.Required(p, "must contain at least one key/value pair"))
	}
	return errs
}

func validateStorageMoreUpdate(obj, old any) field.ErrorList {
	switch o := obj.(type) {
	case *storagev1.CSIDriver:
		prev := old.(*storagev1.CSIDriver)
		var errs field.ErrorList
		if !equality.Semantic.DeepEqual(o.Spec.AttachRequired, prev.Spec.AttachRequired) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "attachedRequired"), o.Spec.AttachRequired, "field is immutable"))
		}
		if !equality.Semantic.DeepEqual(o.Spec.VolumeLifecycleModes, prev.Spec.VolumeLifecycleModes) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "volumeLifecycleModes"), o.Spec.VolumeLifecycleModes, "field is immutable"))
		}
		return errs
	case *storagev1.CSINode:
		return validateCSINodeUpdate(o, old.(*storagev1.CSINode))
	case *storagev1.CSIStorageCapacity:
		return validateCSIStorageCapacityUpdate(o, old.(*storagev1.CSIStorageCapacity))
	case *storagev1.VolumeAttachment:
		if !equality.Semantic.DeepEqual(o.Spec, old.(*storagev1.VolumeAttachment).Spec) {
			return field.ErrorList{field.Invalid(field.NewPath("spec"), o.Spec, "field is immutable")}
		}
	case *storagev1.VolumeAttributesClass:
		prev := old.(*storagev1.VolumeAttributesClass)
		var errs field.ErrorList
		if o.DriverName != prev.DriverName {
			errs = append(errs, field.Forbidden(field.NewPath("driverName"), "updates to driverName are forbidden."))
		}
		if !equality.Semantic.DeepEqual(o.Parameters, prev.Parameters) {
			errs = append(errs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
		}
		return errs
	}
	return nil
}
