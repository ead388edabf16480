package apis

import (
	"encoding/pem"
	"strconv"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxTrustBundleSize bounds a ClusterTrustBundle's PEM data.
const maxTrustBundleSize = 1 << 20

func validateClusterTrustBundle(b *certificatesv1.ClusterTrustBundle) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	name := field.NewPath("metadata", "name")
	if s := b.Spec.SignerName; s != "" {
		errs = append(errs, validateBundleSignerName(s, spec.Child("signerName"))...)
		// A signer's bundles are named "<signer, / as :>:<DNS subdomain>".
		prefix := strings.ReplaceAll(s, "/", ":") + ":"
		if !strings.HasPrefix(b.Name, prefix) {
			errs = append(errs, field.Invalid(name, b.Name, "ClusterTrustBundle for signerName "+s+" must be named with prefix "+prefix))
		} else {
			errs = append(errs, invalidMsgs(name, b.Name, validation.IsDNS1123Subdomain(strings.TrimPrefix(b.Name, prefix)))...)
		}
	} else if strings.Contains(b.Name, ":") {
		errs = append(errs, field.Invalid(name, b.Name, "ClusterTrustBundle without signer name must not have \":\" in its name"))
	} else {
		errs = append(errs, invalidMsgs(name, b.Name, validation.IsDNS1123Subdomain(b.Name))...)
	}
	tb := spec.Child("trustBundle")
	switch {
	case b.Spec.TrustBundle == "":
		errs = append(errs, field.Invalid(tb, "<value omitted>", "at least one trust anchor must be provided"))
	case len(b.Spec.TrustBundle) > maxTrustBundleSize:
		errs = append(errs, field.TooLong(tb, "", maxTrustBundleSize))
	default:
		errs = append(errs, validateTrustAnchors(b.Spec.TrustBundle, tb)...)
	}
	return errs
}

// validateTrustAnchors: only CERTIFICATE blocks without headers, at least one.
func validateTrustAnchors(bundle string, p *field.Path) field.ErrorList {
	rest := []byte(bundle)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return field.ErrorList{field.Invalid(p, "<value omitted>", "entry "+strconv.Itoa(n)+" has bad block type: "+block.Type)}
		}
		if len(block.Headers) != 0 {
			return field.ErrorList{field.Invalid(p, "<value omitted>", "entry "+strconv.Itoa(n)+" has PEM block headers")}
		}
		n++
	}
	if n == 0 {
		return field.ErrorList{field.Invalid(p, "<value omitted>", "at least one trust anchor must be provided")}
	}
	return nil
}

// validateSignerName: "<domain>/<path>", the domain a DNS subdomain.
func validateBundleSignerName(s string, p *field.Path) field.ErrorList {
	domain, rest, ok := strings.Cut(s, "/")
	if !ok || domain == "" || rest == "" {
		return field.ErrorList{field.Invalid(p, s, "must be a fully qualified domain and path of the form 'example.com/signer-name'")}
	}
	return invalidMsgs(p, s, validation.IsDNS1123Subdomain(domain))
}

func validatePodCertificateRequest(r *certificatesv1.PodCertificateRequest) field.ErrorList {
	spec := field.NewPath("spec")
	s := &r.Spec
	var errs field.ErrorList
	errs = append(errs, validateBundleSignerName(s.SignerName, spec.Child("signerName"))...)
	for _, f := range []struct{ name, v string }{
		{"podName", s.PodName}, {"serviceAccountName", s.ServiceAccountName}, {"nodeName", string(s.NodeName)},
	} {
		if f.v == "" {
			errs = append(errs, field.Required(spec.Child(f.name), ""))
			continue
		}
		errs = append(errs, invalidMsgs(spec.Child(f.name), f.v, validation.IsDNS1123Subdomain(f.v))...)
	}
	for _, f := range []struct{ name, v string }{{"podUID", string(s.PodUID)}, {"serviceAccountUID", string(s.ServiceAccountUID)}, {"nodeUID", string(s.NodeUID)}} {
		if f.v == "" {
			errs = append(errs, field.Required(spec.Child(f.name), ""))
		} else if len(f.v) > 128 {
			errs = append(errs, field.TooLong(spec.Child(f.name), "", 128))
		}
	}
	if m := s.MaxExpirationSeconds; m != nil && (*m < 3600 || *m > 91*24*3600) {
		errs = append(errs, field.Invalid(spec.Child("maxExpirationSeconds"), *m, "must be in the range [3600, 7862400]"))
	}
	if len(s.StubPKCS10Request) == 0 {
		errs = append(errs, field.Required(spec.Child("stubPKCS10Request"), "must be provided"))
	}
	return errs
}

func validateStorageVersionMigration(m *storagemigrationv1.StorageVersionMigration) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("spec", "resource")
	if r := m.Spec.Resource.Resource; r == "" {
		errs = append(errs, field.Required(rp.Child("resource"), "resource is required to be set"))
	} else if msgs := validation.IsDNS1035Label(r); len(msgs) > 0 {
		errs = append(errs, field.Invalid(rp.Child("resource"), r, strings.Join(msgs, ",")))
	}
	if g := m.Spec.Resource.Group; g != "" {
		if msgs := validation.IsDNS1123Subdomain(g); len(msgs) > 0 {
			errs = append(errs, field.Invalid(rp.Child("group"), g, strings.Join(msgs, ",")))
		}
	}
	return errs
}

func validateCertificatesMoreUpdate(obj, old any) field.ErrorList {
	switch o := obj.(type) {
	case *certificatesv1.ClusterTrustBundle:
		if p := old.(*certificatesv1.ClusterTrustBundle); o.Spec.SignerName != p.Spec.SignerName {
			return field.ErrorList{field.Invalid(field.NewPath("spec", "signerName"), o.Spec.SignerName, "field is immutable")}
		}
	case *certificatesv1.PodCertificateRequest:
		if !equality.Semantic.DeepEqual(o.Spec, old.(*certificatesv1.PodCertificateRequest).Spec) {
			return field.ErrorList{field.Invalid(field.NewPath("spec"), o.Spec, "field is immutable")}
		}
	case *storagemigrationv1.StorageVersionMigration:
		if !equality.Semantic.DeepEqual(o.Spec, old.(*storagemigrationv1.StorageVersionMigration).Spec) {
			return field.ErrorList{field.Invalid(field.NewPath("spec"), o.Spec, "field is immutable")}
		}
	}
	return nil
}
