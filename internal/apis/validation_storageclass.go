package apis

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	classReclaimPolicies = []string{string(corev1.PersistentVolumeReclaimDelete), string(corev1.PersistentVolumeReclaimRetain)}
	volumeBindingModes   = []string{string(storagev1.VolumeBindingImmediate), string(storagev1.VolumeBindingWaitForFirstConsumer)}
)

func validateStorageClass(c *storagev1.StorageClass) field.ErrorList {
	errs := validateProvisionerName(c.Provisioner, field.NewPath("provisioner"))
	errs = append(errs, validateProvisionerParameters(c.Parameters, field.NewPath("parameters"))...)
	if r := c.ReclaimPolicy; r != nil && *r != "" && !oneOf(string(*r), classReclaimPolicies) {
		errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), r, classReclaimPolicies))
	}
	switch m := c.VolumeBindingMode; {
	case m == nil:
		errs = append(errs, field.Required(field.NewPath("volumeBindingMode"), ""))
	case !oneOf(string(*m), volumeBindingModes):
		errs = append(errs, field.NotSupported(field.NewPath("volumeBindingMode"), m, volumeBindingModes))
	}
	errs = append(errs, validateAllowedTopologies(c.AllowedTopologies, field.NewPath("allowedTopologies"))...)
	if c.Provisioner == "" {
		// Upstream checks this declaratively, after the rules above.
		errs = append(errs, field.Required(field.NewPath("provisioner"), ""))
	}
	return errs
}

// validateStorageClassUpdate: everything but the metadata and the
// allowed topologies is fixed.
func validateStorageClassUpdate(c, old *storagev1.StorageClass) field.ErrorList {
	errs := immutable(c.Parameters, old.Parameters, field.NewPath("parameters"))
	errs = append(errs, immutable(c.Provisioner, old.Provisioner, field.NewPath("provisioner"))...)
	errs = append(errs, immutable(c.ReclaimPolicy, old.ReclaimPolicy, field.NewPath("reclaimPolicy"))...)
	return append(errs, immutable(c.VolumeBindingMode, old.VolumeBindingMode, field.NewPath("volumeBindingMode"))...)
}

// validateProvisionerName checks a non-empty provisioner or driver name:
// a qualified name, compared in lower case.
func validateProvisionerName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return nil
	}
	lower := strings.ToLower(name)
	return invalidMsgs(p, lower, validation.IsQualifiedName(lower))
}

// validateProvisionerParameters bounds a class's parameters: at most 512
// keys, none empty, 256 KiB in all.
func validateProvisionerParameters(params map[string]string, p *field.Path) field.ErrorList {
	if len(params) > 512 {
		return field.ErrorList{field.TooLong(p, "", 512)}
	}
	var errs field.ErrorList
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
	return errs
}

func validateAllowedTopologies(terms []corev1.TopologySelectorTerm, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := make([]map[string][]string, 0, len(terms))
	for i, t := range terms {
		tp := p.Index(i)
		ep := tp.Child("matchLabelExpressions")
		exprs := map[string][]string{}
		for j, req := range t.MatchLabelExpressions {
			rp := ep.Index(j)
			vp := rp.Child("values")
			if len(req.Values) == 0 {
				errs = append(errs, field.Required(vp, ""))
			}
			for k, v := range req.Values {
				if slices.Contains(req.Values[:k], v) {
					errs = append(errs, field.Duplicate(vp.Index(k), v))
				}
			}
			errs = append(errs, metav1validation.ValidateLabelName(req.Key, rp.Child("key"))...)
			if _, dup := exprs[req.Key]; dup {
				errs = append(errs, field.Duplicate(rp.Child("key"), req.Key))
			}
			values := slices.Clone(req.Values)
			slices.Sort(values)
			exprs[req.Key] = slices.Compact(values)
		}
		for _, prev := range seen {
			if maps.EqualFunc(prev, exprs, slices.Equal) {
				errs = append(errs, field.Duplicate(ep, ""))
			}
		}
		seen = append(seen, exprs)
	}
	return errs
}
