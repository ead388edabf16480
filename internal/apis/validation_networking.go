package apis

import (
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ValidateIPAddressName is the name rule of IPAddress objects: the name is
// the address itself, in canonical form (no leading zeros, RFC 5952 IPv6).
func ValidateIPAddressName(name string, _ bool) []string {
	var msgs []string
	for _, e := range validation.IsValidIP(&field.Path{}, name) {
		msgs = append(msgs, e.Detail)
	}
	return msgs
}

// validateNetworking checks a new ServiceCIDR or IPAddress (metadata is
// checked by the caller).
func validateNetworking(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *networkingv1.ServiceCIDR:
		return validateServiceCIDRSpec(o.Spec.CIDRs)
	case *networkingv1.IPAddress:
		return validateParentRef(o.Spec.ParentRef, field.NewPath("spec", "parentRef"))
	}
	return nil
}

// validateNetworkingUpdate checks an update. A ServiceCIDR's ranges are
// fixed, except that a single-stack one may gain a range of the other IP
// family; an IPAddress keeps its parent.
func validateNetworkingUpdate(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *networkingv1.ServiceCIDR:
		return validateServiceCIDRUpdate(o.Spec.CIDRs, old.(*networkingv1.ServiceCIDR).Spec.CIDRs)
	case *networkingv1.IPAddress:
		errs := validateNetworking(o)
		prev := old.(*networkingv1.IPAddress)
		if !equality.Semantic.DeepEqual(o.Spec.ParentRef, prev.Spec.ParentRef) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "parentRef"), o.Spec.ParentRef, "field is immutable"))
		}
		return errs
	}
	return nil
}

func validateServiceCIDRSpec(cidrs []string) field.ErrorList {
	p := field.NewPath("spec", "cidrs")
	switch {
	case len(cidrs) == 0:
		return field.ErrorList{field.Required(p, "at least one CIDR required")}
	case len(cidrs) > 2:
		// Upstream shows its internal spec type, which has no JSON tags.
		return field.ErrorList{field.Invalid(p, struct{ CIDRs []string }{cidrs}, "may only hold up to 2 values")}
	}
	var errs field.ErrorList
	for i, c := range cidrs {
		errs = append(errs, validation.IsValidCIDR(p.Index(i), c)...)
	}
	if len(cidrs) == 2 {
		a, b := cidrFamily(cidrs[0]), cidrFamily(cidrs[1])
		if a != 0 && a == b {
			errs = append(errs, field.Invalid(p, cidrs, "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"))
		}
	}
	return errs
}

func validateServiceCIDRUpdate(cidrs, old []string) field.ErrorList {
	p := field.NewPath("spec", "cidrs")
	var errs field.ErrorList
	switch {
	case len(cidrs) == len(old):
		for i := range old {
			if cidrs[i] != old[i] {
				errs = append(errs, field.Invalid(p.Index(i), cidrs[i], "field is immutable"))
			}
		}
	case len(old) == 1 && len(cidrs) == 2:
		// Growing to dual-stack: the existing range stays first.
		if cidrs[0] != old[0] {
			errs = append(errs, field.Invalid(p.Index(0), cidrs[0], "field is immutable"))
		}
		errs = append(errs, validateServiceCIDRSpec(cidrs)...)
	default:
		errs = append(errs, field.Invalid(p, cidrs, "field is immutable"))
	}
	return errs
}

// cidrFamily is 4 or 6, or 0 when s does not parse.
func cidrFamily(s string) int {
	pfx, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return 0
	case pfx.Addr().Is4():
		return 4
	}
	return 6
}

func validateParentRef(ref *networkingv1.ParentReference, p *field.Path) field.ErrorList {
	if ref == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	if ref.Group != "" {
		for _, msg := range validation.IsDNS1123Subdomain(ref.Group) {
			errs = append(errs, field.Invalid(p.Child("group"), ref.Group, msg))
		}
	}
	segment := func(name, value string, required bool) {
		if value == "" {
			if required {
				errs = append(errs, field.Required(p.Child(name), ""))
			}
			return
		}
		for _, msg := range content.IsPathSegmentName(value) {
			errs = append(errs, field.Invalid(p.Child(name), value, msg))
		}
	}
	// In upstream's order, which is by field name.
	segment("name", ref.Name, true)
	segment("namespace", ref.Namespace, false)
	segment("resource", ref.Resource, true)
	return errs
}
