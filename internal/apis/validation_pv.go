package apis

import (
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var reclaimPolicies = []string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRecycle), string(corev1.PersistentVolumeReclaimRetain)}

// pvSource is one volume type a PersistentVolume may hold, with the
// checks Skiff applies to its details (nil: none).
type pvSource struct {
	name  string
	set   bool
	check func(p *field.Path) field.ErrorList
}

func validatePersistentVolume(pv *corev1.PersistentVolume) field.ErrorList {
	sp := field.NewPath("spec")
	s := &pv.Spec
	var errs field.ErrorList
	if len(s.AccessModes) == 0 {
		errs = append(errs, field.Required(sp.Child("accessModes"), ""))
	}
	rwop, other := false, false
	for _, m := range s.AccessModes {
		switch {
		case !oneOf(string(m), pvcAccessModes):
			errs = append(errs, field.NotSupported(sp.Child("accessModes"), m, pvcAccessModes))
		case m == corev1.ReadWriteOncePod:
			rwop = true
		default:
			other = true
		}
	}
	if rwop && other {
		errs = append(errs, field.Forbidden(sp.Child("accessModes"), "may not use ReadWriteOncePod with other access modes"))
	}
	cp := sp.Child("capacity")
	if len(s.Capacity) == 0 {
		errs = append(errs, field.Required(cp, ""))
	}
	if _, ok := s.Capacity[corev1.ResourceStorage]; !ok || len(s.Capacity) > 1 {
		errs = append(errs, field.NotSupported(cp, s.Capacity, []string{string(corev1.ResourceStorage)}))
	}
	for k, q := range s.Capacity {
		kp := cp.Key(string(k))
		if q.Value() < 0 {
			errs = append(errs, field.Invalid(kp, q.Value(), "must be a valid resource quantity"))
		}
		if q.Cmp(resource.Quantity{}) <= 0 {
			errs = append(errs, field.Invalid(kp, q.String(), "must be greater than zero"))
		}
	}
	if r := s.PersistentVolumeReclaimPolicy; r != "" && !oneOf(string(r), reclaimPolicies) {
		errs = append(errs, field.NotSupported(sp.Child("persistentVolumeReclaimPolicy"), r, reclaimPolicies))
	}
	affinity := false
	if na := s.NodeAffinity; na != nil {
		affinity = true
		ap := sp.Child("nodeAffinity")
		if na.Required == nil {
			errs = append(errs, field.Required(ap.Child("required"), "must specify required node constraints"))
		} else {
			tp := ap.Child("required", "nodeSelectorTerms")
			if len(na.Required.NodeSelectorTerms) == 0 {
				errs = append(errs, field.Required(tp, "must have at least one node selector term"))
			}
			for i, t := range na.Required.NodeSelectorTerms {
				errs = append(errs, validateNodeSelectorTerm(t, tp.Index(i))...)
			}
		}
	}
	errs = append(errs, validatePVSources(s, affinity, sp)...)
	if s.HostPath != nil && path.Clean(s.HostPath.Path) == "/" && s.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRecycle {
		errs = append(errs, field.Forbidden(sp.Child("persistentVolumeReclaimPolicy"), "may not be 'recycle' for a hostPath mount of '/'"))
	}
	if s.StorageClassName != "" {
		errs = append(errs, dns1123Subdomain(s.StorageClassName, sp.Child("storageClassName"))...)
	}
	if m := s.VolumeMode; m != nil && !oneOf(string(*m), volumeModes) {
		errs = append(errs, field.NotSupported(sp.Child("volumeMode"), *m, volumeModes))
	}
	if c := s.VolumeAttributesClassName; c != nil {
		vp := sp.Child("volumeAttributesClassName")
		if *c == "" {
			errs = append(errs, field.Required(vp, "an empty string is disallowed"))
		} else {
			errs = append(errs, dns1123Subdomain(*c, vp)...)
		}
		if s.CSI == nil {
			errs = append(errs, field.Required(sp.Child("csi"), "has to be specified when using volumeAttributesClassName"))
		}
	}
	return errs
}

// validatePVSources requires exactly one volume type, in upstream's order.
func validatePVSources(s *corev1.PersistentVolumeSpec, affinity bool, sp *field.Path) field.ErrorList {
	sources := [...]pvSource{
		{"hostPath", s.HostPath != nil, func(p *field.Path) field.ErrorList {
			if s.HostPath.Path == "" {
				return field.ErrorList{field.Required(p.Child("path"), "")}
			}
			errs := validatePathNoBacksteps(s.HostPath.Path, p.Child("path"))
			if t := s.HostPath.Type; t != nil && !oneOf(string(*t), hostPathTypes) {
				errs = append(errs, field.NotSupported(p.Child("type"), t, hostPathTypes))
			}
			return errs
		}},
		{"gcePersistentDisk", s.GCEPersistentDisk != nil, nil},
		{"awsElasticBlockStore", s.AWSElasticBlockStore != nil, nil},
		{"glusterfs", s.Glusterfs != nil, nil},
		{"flocker", s.Flocker != nil, nil},
		{"nfs", s.NFS != nil, func(p *field.Path) field.ErrorList {
			var errs field.ErrorList
			if s.NFS.Server == "" {
				errs = append(errs, field.Required(p.Child("server"), ""))
			}
			if s.NFS.Path == "" {
				errs = append(errs, field.Required(p.Child("path"), ""))
			}
			if !path.IsAbs(s.NFS.Path) {
				errs = append(errs, field.Invalid(p.Child("path"), s.NFS.Path, "must be an absolute path"))
			}
			return errs
		}},
		{"rbd", s.RBD != nil, nil},
		{"quobyte", s.Quobyte != nil, nil},
		{"cephFS", s.CephFS != nil, nil},
		{"iscsi", s.ISCSI != nil, nil},
		{"cinder", s.Cinder != nil, nil},
		{"fc", s.FC != nil, nil},
		{"azureFile", s.AzureFile != nil, nil},
		{"vsphereVolume", s.VsphereVolume != nil, nil},
		{"photonPersistentDisk", s.PhotonPersistentDisk != nil, nil},
		{"portworxVolume", s.PortworxVolume != nil, nil},
		{"azureDisk", s.AzureDisk != nil, nil},
		{"scaleIO", s.ScaleIO != nil, nil},
		{"local", s.Local != nil, func(p *field.Path) field.ErrorList {
			var errs field.ErrorList
			if s.Local.Path == "" {
				errs = append(errs, field.Required(p.Child("path"), ""))
			} else {
				errs = append(errs, validatePathNoBacksteps(s.Local.Path, p.Child("path"))...)
			}
			if !affinity {
				errs = append(errs, field.Required(sp.Child("nodeAffinity"), "Local volume requires node affinity"))
			}
			return errs
		}},
		{"storageos", s.StorageOS != nil, nil},
		{"csi", s.CSI != nil, func(p *field.Path) field.ErrorList {
			errs := validateCSIDriverName(s.CSI.Driver, p.Child("driver"))
			if s.CSI.VolumeHandle == "" {
				errs = append(errs, field.Required(p.Child("volumeHandle"), ""))
			}
			return errs
		}},
	}
	var errs field.ErrorList
	n := 0
	for _, src := range sources {
		switch {
		case !src.set:
		case n > 0:
			errs = append(errs, field.Forbidden(sp.Child(src.name), "may not specify more than 1 volume type"))
		default:
			n++
			if src.check != nil {
				errs = append(errs, src.check(sp.Child(src.name))...)
			}
		}
	}
	if n == 0 {
		errs = append(errs, field.Required(sp, "must specify a volume type"))
	}
	return errs
}
