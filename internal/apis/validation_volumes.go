package apis

import (
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const fileModeErrorMsg = "must be a number between 0 and 0777 (octal), both inclusive"

var hostPathTypes = []string{"", string(corev1.HostPathBlockDev), string(corev1.HostPathCharDev), string(corev1.HostPathDirectory),
	string(corev1.HostPathDirectoryOrCreate), string(corev1.HostPathFile), string(corev1.HostPathFileOrCreate), string(corev1.HostPathSocket)}

// validateVolumes checks a pod's volumes and returns the valid ones by
// name, for the mounts to refer to.
func validateVolumes(vols []corev1.Volume, p *field.Path) (map[string]*corev1.VolumeSource, field.ErrorList) {
	var errs field.ErrorList
	byName := make(map[string]*corev1.VolumeSource, len(vols))
	for i := range vols {
		v := &vols[i]
		ip := p.Index(i)
		el := validateVolumeSource(&v.VolumeSource, ip)
		if v.Name == "" {
			el = append(el, field.Required(ip.Child("name"), ""))
		} else {
			el = append(el, dns1123Label(v.Name, ip.Child("name"))...)
		}
		if _, dup := byName[v.Name]; dup {
			el = append(el, field.Duplicate(ip.Child("name"), v.Name))
		}
		if len(el) == 0 {
			byName[v.Name] = &v.VolumeSource
		} else {
			errs = append(errs, el...)
		}
	}
	return byName, errs
}

// volumeKind is one member of the VolumeSource union, in upstream's order.
type volumeKind struct {
	name string
	set  bool
}

func volumeKinds(s *corev1.VolumeSource) [30]volumeKind {
	return [30]volumeKind{
		{"emptyDir", s.EmptyDir != nil}, {"hostPath", s.HostPath != nil}, {"gitRepo", s.GitRepo != nil},
		{"gcePersistentDisk", s.GCEPersistentDisk != nil}, {"awsElasticBlockStore", s.AWSElasticBlockStore != nil},
		{"secret", s.Secret != nil}, {"nfs", s.NFS != nil}, {"iscsi", s.ISCSI != nil}, {"glusterfs", s.Glusterfs != nil},
		{"flocker", s.Flocker != nil}, {"persistentVolumeClaim", s.PersistentVolumeClaim != nil}, {"rbd", s.RBD != nil},
		{"cinder", s.Cinder != nil}, {"cephFS", s.CephFS != nil}, {"quobyte", s.Quobyte != nil},
		{"downwarAPI", s.DownwardAPI != nil}, {"fc", s.FC != nil}, {"flexVolume", s.FlexVolume != nil},
		{"configMap", s.ConfigMap != nil}, {"azureFile", s.AzureFile != nil}, {"vsphereVolume", s.VsphereVolume != nil},
		{"photonPersistentDisk", s.PhotonPersistentDisk != nil}, {"portworxVolume", s.PortworxVolume != nil},
		{"azureDisk", s.AzureDisk != nil}, {"storageos", s.StorageOS != nil}, {"projected", s.Projected != nil},
		{"scaleIO", s.ScaleIO != nil}, {"csi", s.CSI != nil}, {"ephemeral", s.Ephemeral != nil}, {"image", s.Image != nil},
	}
}

// validateVolumeSource requires exactly one source and checks the common
// ones in detail.
func validateVolumeSource(s *corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	for _, k := range volumeKinds(s) {
		if !k.set {
			continue
		}
		if n > 0 {
			errs = append(errs, field.Forbidden(p.Child(k.name), "may not specify more than 1 volume type"))
			continue
		}
		n++
		errs = append(errs, validateVolumeSourceDetail(s, k.name, p.Child(k.name))...)
	}
	if n == 0 {
		errs = append(errs, field.Required(p, "must specify a volume type"))
	}
	return errs
}

func validateVolumeSourceDetail(s *corev1.VolumeSource, kind string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch kind {
	case "emptyDir":
		if l := s.EmptyDir.SizeLimit; l != nil && l.Cmp(resource.Quantity{}) < 0 {
			errs = append(errs, field.Forbidden(p.Child("sizeLimit"), "SizeLimit field must be a valid resource quantity"))
		}
	case "hostPath":
		if s.HostPath.Path == "" {
			return field.ErrorList{field.Required(p.Child("path"), "")}
		}
		errs = append(errs, validatePathNoBacksteps(s.HostPath.Path, p.Child("path"))...)
		if t := s.HostPath.Type; t != nil && !oneOf(string(*t), hostPathTypes) {
			errs = append(errs, field.NotSupported(p.Child("type"), t, hostPathTypes))
		}
	case "secret":
		if s.Secret.SecretName == "" {
			errs = append(errs, field.Required(p.Child("secretName"), ""))
		}
		errs = append(errs, validateFileMode(s.Secret.DefaultMode, p.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(s.Secret.Items, p.Child("items"))...)
	case "configMap":
		if s.ConfigMap.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		errs = append(errs, validateFileMode(s.ConfigMap.DefaultMode, p.Child("defaultMode"))...)
		errs = append(errs, validateKeyToPaths(s.ConfigMap.Items, p.Child("items"))...)
	case "persistentVolumeClaim":
		if s.PersistentVolumeClaim.ClaimName == "" {
			errs = append(errs, field.Required(p.Child("claimName"), ""))
		}
	case "nfs":
		if s.NFS.Server == "" {
			errs = append(errs, field.Required(p.Child("server"), ""))
		}
		if s.NFS.Path == "" {
			errs = append(errs, field.Required(p.Child("path"), ""))
		}
		if !path.IsAbs(s.NFS.Path) {
			errs = append(errs, field.Invalid(p.Child("path"), s.NFS.Path, "must be an absolute path"))
		}
	case "downwarAPI":
		for i, f := range s.DownwardAPI.Items {
			if f.FieldRef != nil {
				errs = append(errs, validateFieldRef(f.FieldRef, volumeFieldPaths, p.Child("items").Index(i).Child("fieldRef"))...)
			}
		}
		errs = append(errs, validateFileMode(s.DownwardAPI.DefaultMode, p.Child("defaultMode"))...)
	case "projected":
		errs = append(errs, validateFileMode(s.Projected.DefaultMode, p.Child("defaultMode"))...)
		errs = append(errs, validateProjectedSources(s.Projected, p)...)
	case "csi":
		if s.CSI.Driver == "" {
			errs = append(errs, field.Required(p.Child("driver"), ""))
		}
	case "image":
		if s.Image.Reference == "" {
			errs = append(errs, field.Required(p.Child("reference"), ""))
		}
	}
	return errs
}

func validateFileMode(m *int32, p *field.Path) field.ErrorList {
	if m != nil && (*m > 0777 || *m < 0) {
		return field.ErrorList{field.Invalid(p, *m, fileModeErrorMsg)}
	}
	return nil
}

func validateKeyToPaths(items []corev1.KeyToPath, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		ip := p.Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(ip.Child("path"), ""))
		}
		errs = append(errs, validateLocalDescendingPath(kp.Path, ip.Child("path"))...)
		if strings.HasPrefix(kp.Path, "..") && !strings.HasPrefix(kp.Path, "../") {
			errs = append(errs, field.Invalid(ip.Child("path"), kp.Path, "must not start with '..'"))
		}
		errs = append(errs, validateFileMode(kp.Mode, ip.Child("mode"))...)
	}
	return errs
}

func validateLocalDescendingPath(target string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(target) {
		errs = append(errs, field.Invalid(p, target, "must be a relative path"))
	}
	return append(errs, validatePathNoBacksteps(target, p)...)
}

func validatePathNoBacksteps(target string, p *field.Path) field.ErrorList {
	for _, part := range strings.Split(target, "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(p, target, "must not contain '..'")}
		}
	}
	return nil
}

func validatePortNumOrName(port intstr.IntOrString, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Type == intstr.Int {
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(p, port.IntValue(), msg))
		}
		return errs
	}
	for _, msg := range validation.IsValidPortName(port.StrVal) {
		errs = append(errs, field.Invalid(p, port.StrVal, msg))
	}
	return errs
}

// Resource names, as upstream's helpers classify them.
var (
	standardContainerResources = sets.New(corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage)
	standardResources          = sets.New(corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
		corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsEphemeralStorage,
		corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
		corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices, corev1.ResourceReplicationControllers,
		corev1.ResourceSecrets, corev1.ResourcePersistentVolumeClaims, corev1.ResourceConfigMaps, corev1.ResourceStorage,
		corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers, corev1.ResourceRequestsStorage)
	integerResources = sets.New(corev1.ResourcePods, corev1.ResourceQuotas, corev1.ResourceServices,
		corev1.ResourceReplicationControllers, corev1.ResourceSecrets, corev1.ResourceConfigMaps,
		corev1.ResourcePersistentVolumeClaims, corev1.ResourceServicesNodePorts, corev1.ResourceServicesLoadBalancers)
)

func isHugePages(n corev1.ResourceName) bool {
	return strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix)
}

// isNativeResource: unqualified names and those under kubernetes.io/.
func isNativeResource(n corev1.ResourceName) bool {
	return !strings.Contains(string(n), "/") || strings.Contains(string(n), corev1.ResourceDefaultNamespacePrefix)
}

func isExtendedResource(n corev1.ResourceName) bool {
	if isNativeResource(n) || strings.HasPrefix(string(n), corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+string(n))) == 0
}

func isOvercommitAllowed(n corev1.ResourceName) bool { return isNativeResource(n) && !isHugePages(n) }

func isStandardResource(n corev1.ResourceName) bool {
	return standardResources.Has(n) || strings.HasPrefix(string(n), corev1.DefaultResourceRequestsPrefix+corev1.ResourceHugePagesPrefix)
}

// validateResourceName accepts a qualified name that is standard or
// fully qualified.
func validateResourceName(n corev1.ResourceName, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(string(n)) {
		errs = append(errs, field.Invalid(p, n, msg))
	}
	if len(errs) == 0 && !strings.Contains(string(n), "/") && !isStandardResource(n) {
		errs = append(errs, field.Invalid(p, n, "must be a standard resource type or fully qualified"))
	}
	return errs
}

func validateContainerResourceName(n corev1.ResourceName, p *field.Path) field.ErrorList {
	errs := validateResourceName(n, p)
	if !strings.Contains(string(n), "/") {
		if !standardContainerResources.Has(n) && !isHugePages(n) {
			errs = append(errs, field.Invalid(p, n, "must be a standard resource for containers"))
		}
	} else if !isNativeResource(n) && !isExtendedResource(n) {
		errs = append(errs, field.Invalid(p, n, "doesn't follow extended resource name standard"))
	}
	return errs
}

// validateQuantity refuses negative quantities, and fractions of resources
// counted in whole units.
func validateQuantity(n corev1.ResourceName, q resource.Quantity, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(p, q.String(), "must be greater than or equal to 0"))
	}
	if (integerResources.Has(n) || isExtendedResource(n)) && q.MilliValue()%1000 != 0 {
		errs = append(errs, field.Invalid(p, q, "must be an integer"))
	}
	return errs
}

// validateResourceRequirements checks a container's requests and limits:
// names, non-negative values, requests within limits. claims is the set of
// the pod's resource claim names (nil when none may be referenced).
func validateResourceRequirements(r *corev1.ResourceRequirements, claims sets.Set[string], p *field.Path) field.ErrorList {
	var errs field.ErrorList
	limPath, reqPath := p.Child("limits"), p.Child("requests")
	cpuOrMem, huge := false, false
	for name, q := range r.Limits {
		fp := limPath.Key(string(name))
		errs = append(errs, validateContainerResourceName(name, fp)...)
		errs = append(errs, validateQuantity(name, q, fp)...)
		huge = huge || isHugePages(name)
		cpuOrMem = cpuOrMem || name == corev1.ResourceCPU || name == corev1.ResourceMemory
	}
	for name, q := range r.Requests {
		fp := reqPath.Key(string(name))
		errs = append(errs, validateContainerResourceName(name, fp)...)
		errs = append(errs, validateQuantity(name, q, fp)...)
		if l, ok := r.Limits[name]; ok {
			if q.Cmp(l) != 0 && !isOvercommitAllowed(name) {
				errs = append(errs, field.Invalid(reqPath, q.String(), "must be equal to "+string(name)+" limit of "+l.String()))
			} else if q.Cmp(l) > 0 {
				errs = append(errs, field.Invalid(reqPath, q.String(), "must be less than or equal to "+string(name)+" limit of "+l.String()))
			}
		} else if !isOvercommitAllowed(name) {
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
		huge = huge || isHugePages(name)
		cpuOrMem = cpuOrMem || name == corev1.ResourceCPU || name == corev1.ResourceMemory
	}
	if huge && !cpuOrMem {
		errs = append(errs, field.Forbidden(p, "HugePages require cpu or memory"))
	}
	cp := p.Child("claims")
	seen := sets.New[string]()
	for i, c := range r.Claims {
		switch {
		case c.Name == "":
			errs = append(errs, field.Required(cp.Index(i), ""))
		case seen.Has(c.Name + "/" + c.Request):
			errs = append(errs, field.Duplicate(cp.Index(i), c.Name))
		case !claims.Has(c.Name):
			e := field.NotFound(cp.Index(i), c.Name)
			e.Detail = "must be one of the names in pod.spec.resourceClaims which is empty"
			if claims.Len() > 0 {
				e.Detail = "must be one of the names in pod.spec.resourceClaims: " + strings.Join(sets.List(claims), ", ")
			}
			errs = append(errs, e)
		}
		seen.Insert(c.Name + "/" + c.Request)
	}
	return errs
}
