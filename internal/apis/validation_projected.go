package apis

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Pod certificate lifetimes a projection may ask for, as upstream bounds
// them: at least an hour, at most 91 days, and at most a day from the
// kubernetes.io signers.
const (
	minPodCertificateSeconds           = 3600
	maxPodCertificateSeconds           = 91 * 24 * 3600
	maxKubernetesPodCertificateSeconds = 24 * 3600
)

var podCertificateKeyTypes = []string{"RSA3072", "RSA4096", "ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519"}

// validateProjectedSources checks each source of a projected volume (p is
// the volume's projected field) as upstream does: one kind per source,
// the kind's own rules, and no file written by two sources. Upstream
// reports a few errors at the volume's path rather than the source's;
// they stay there, since clients match on field paths.
func validateProjectedSources(s *corev1.ProjectedVolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := sets.New[string]()
	// claim records a file path, reporting a second user of it with value.
	claim := func(path string, value any) {
		if paths.Has(path) {
			errs = append(errs, field.Invalid(p, value, "conflicting duplicate paths"))
		}
		paths.Insert(path)
	}
	for i := range s.Sources {
		src := &s.Sources[i]
		sp := p.Child("sources").Index(i)
		kinds := 0
		if src.Secret != nil {
			kinds++
			errs = append(errs, validateProjectedKeys(src.Secret.Name, src.Secret.Items, sp.Child("secret"), claim)...)
		}
		if src.ConfigMap != nil {
			kinds++
			errs = append(errs, validateProjectedKeys(src.ConfigMap.Name, src.ConfigMap.Items, sp.Child("configMap"), claim)...)
		}
		if src.DownwardAPI != nil {
			kinds++
			dp := sp.Child("downwardAPI")
			for j := range src.DownwardAPI.Items {
				f := &src.DownwardAPI.Items[j]
				// Upstream reports an item's errors at the source, not the item.
				errs = append(errs, validateDownwardAPIFile(f, dp)...)
				if f.Path != "" {
					claim(f.Path, f.Path)
				}
			}
		}
		if src.ServiceAccountToken != nil {
			kinds++
			errs = append(errs, validateProjectedToken(src.ServiceAccountToken, sp.Child("serviceAccountToken"), p)...)
		}
		if src.ClusterTrustBundle != nil {
			kinds++
			errs = append(errs, validateProjectedTrustBundle(src.ClusterTrustBundle, sp.Child("clusterTrustBundle"))...)
			claim(src.ClusterTrustBundle.Path, src.ClusterTrustBundle.Path)
		}
		if src.PodCertificate != nil {
			kinds++
			errs = append(errs, validateProjectedPodCertificate(src.PodCertificate, sp.Child("podCertificate"), claim)...)
		}
		if kinds > 1 {
			errs = append(errs, field.Forbidden(sp, "may not specify more than 1 volume type per source"))
		}
	}
	return errs
}

// validateProjectedKeys checks a projected Secret or ConfigMap: its name
// and items; a duplicate file is reported with the object's name.
func validateProjectedKeys(name string, items []corev1.KeyToPath, p *field.Path, claim func(string, any)) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	errs = append(errs, validateKeyToPaths(items, p.Child("items"))...)
	for _, kp := range items {
		if kp.Path != "" {
			claim(kp.Path, name)
		}
	}
	return errs
}

// validateDownwardAPIFile checks one file of a downward API projection.
func validateDownwardAPIFile(f *corev1.DownwardAPIVolumeFile, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	}
	errs = append(errs, validateLocalNonReservedPath(f.Path, p.Child("path"))...)
	switch {
	case f.FieldRef != nil:
		errs = append(errs, validateFieldRef(f.FieldRef, volumeFieldPaths, p.Child("fieldRef"))...)
		if f.ResourceFieldRef != nil {
			errs = append(errs, field.Invalid(p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		}
	case f.ResourceFieldRef != nil:
		if f.ResourceFieldRef.Resource == "" {
			errs = append(errs, field.Required(p.Child("resourceFieldRef", "resource"), ""))
		}
	default:
		errs = append(errs, field.Required(p, "one of fieldRef and resourceFieldRef is required"))
	}
	return append(errs, validateFileMode(f.Mode, p.Child("mode"))...)
}

// validateProjectedToken checks a ServiceAccount token projection; its
// path errors are reported at the volume's path (vp), as upstream does.
func validateProjectedToken(t *corev1.ServiceAccountTokenProjection, p, vp *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch exp := t.ExpirationSeconds; {
	case exp == nil:
		errs = append(errs, field.Required(p.Child("expirationSeconds"), ""))
	case *exp < 10*60:
		errs = append(errs, field.Invalid(p.Child("expirationSeconds"), *exp, "may not specify a duration less than 10 minutes"))
	case *exp > 1<<32:
		errs = append(errs, field.Invalid(p.Child("expirationSeconds"), *exp, "may not specify a duration larger than 2^32 seconds"))
	}
	if t.Path == "" {
		return append(errs, field.Required(vp.Child("path"), ""))
	}
	return append(errs, validateLocalNonReservedPath(t.Path, vp.Child("path"))...)
}

// validateProjectedTrustBundle checks a ClusterTrustBundle projection: by
// name or by signer name and label selector, never both.
func validateProjectedTrustBundle(b *corev1.ClusterTrustBundleProjection, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case b.Name != nil && b.SignerName != nil:
		errs = append(errs, field.Invalid(p, b, "only one of name and signerName may be used"))
	case b.Name != nil:
		if *b.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "must be a valid object name"))
		}
		if b.LabelSelector != nil {
			errs = append(errs, field.Invalid(p.Child("labelSelector"), b.LabelSelector, "labelSelector must be unset if name is specified"))
		}
	case b.SignerName != nil:
		if *b.SignerName == "" {
			errs = append(errs, field.Required(p.Child("signerName"), "must be a valid signer name"))
		}
		errs = append(errs, validateSignerName(*b.SignerName, p.Child("signerName"))...)
	default:
		errs = append(errs, field.Required(p, "either name or signerName must be specified"))
	}
	if b.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	}
	return append(errs, validateLocalNonReservedPath(b.Path, p.Child("path"))...)
}

// validateProjectedPodCertificate checks a podCertificate projection: the
// signer, key type, lifetime bounds, annotations for the signer, and at
// least one file to write.
func validateProjectedPodCertificate(c *corev1.PodCertificateProjection, p *field.Path, claim func(string, any)) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateSignerName(c.SignerName, p.Child("signerName"))...)
	if c.UserAnnotations != nil {
		ap := p.Child("userAnnotations")
		for k := range c.UserAnnotations {
			errs = append(errs, validation.IsDomainPrefixedKey(ap, strings.ToLower(k))...)
		}
		if apivalidation.ValidateAnnotationsSize(c.UserAnnotations) != nil {
			errs = append(errs, field.TooLong(ap, "", apivalidation.TotalAnnotationSizeLimitB))
		}
	}
	if !oneOf(c.KeyType, podCertificateKeyTypes) {
		errs = append(errs, field.NotSupported(p.Child("keyType"), c.KeyType, podCertificateKeyTypes))
	}
	if m := c.MaxExpirationSeconds; m != nil {
		if *m < minPodCertificateSeconds {
			errs = append(errs, field.Invalid(p.Child("maxExpirationSeconds"), *m, fmt.Sprintf("if provided, maxExpirationSeconds must be >= %d", minPodCertificateSeconds)))
		}
		limit := int32(maxPodCertificateSeconds)
		if strings.HasPrefix(c.SignerName, "kubernetes.io/") {
			limit = maxKubernetesPodCertificateSeconds
		}
		if *m > limit {
			errs = append(errs, field.Invalid(p.Child("maxExpirationSeconds"), *m, fmt.Sprintf("if provided, maxExpirationSeconds must be <= %d", limit)))
		}
	}
	files := 0
	for _, f := range []struct{ name, path string }{
		{"credentialBundlePath", c.CredentialBundlePath}, {"keyPath", c.KeyPath}, {"certificateChainPath", c.CertificateChainPath},
	} {
		if f.path == "" {
			continue
		}
		files++
		errs = append(errs, validateLocalNonReservedPath(f.path, p.Child(f.name))...)
		claim(f.path, f.path)
	}
	if files == 0 {
		errs = append(errs, field.Required(p, "specify at least one of credentialBundlePath, keyPath, and certificateChainPath"))
	}
	return errs
}

// validateLocalNonReservedPath: relative, without "..", and not starting
// with ".." (the kubelet's own files in a volume do).
func validateLocalNonReservedPath(target string, p *field.Path) field.ErrorList {
	errs := validateLocalDescendingPath(target, p)
	if strings.HasPrefix(target, "..") && !strings.HasPrefix(target, "../") {
		errs = append(errs, field.Invalid(p, target, "must not start with '..'"))
	}
	return errs
}
