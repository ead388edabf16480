package apis

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"
)

// Limits of an EndpointSlice, as upstream.
const (
	maxSliceEndpoints      = 1000
	maxSliceAddresses      = 100
	maxSlicePorts          = 20000
	maxSliceTopologyLabels = 16
	maxSliceHints          = 8
)

var (
	sliceAddressTypes = []string{string(discoveryv1.AddressTypeFQDN), string(discoveryv1.AddressTypeIPv4), string(discoveryv1.AddressTypeIPv6)}
	sliceProtocols    = []string{string(corev1.ProtocolSCTP), string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}
)

// validateEndpointSlice checks a slice; on update (old != nil) endpoints
// that did not change are accepted as stored.
func validateEndpointSlice(s, old *discoveryv1.EndpointSlice) field.ErrorList {
	errs := validateEnum(string(s.AddressType), sliceAddressTypes, field.NewPath("addressType"))
	errs = append(errs, validateSlicePorts(s.Ports, field.NewPath("ports"))...)
	eerrs := validateSliceEndpoints(s.Endpoints, s.AddressType, field.NewPath("endpoints"))
	if len(eerrs) > 0 && old != nil && equality.Semantic.DeepEqual(s.Endpoints, old.Endpoints) {
		eerrs = nil
	}
	errs = append(errs, eerrs...)
	if old != nil {
		errs = append(errs, immutable(s.AddressType, old.AddressType, field.NewPath("addressType"))...)
	}
	return errs
}

func validateSliceEndpoints(eps []discoveryv1.Endpoint, typ discoveryv1.AddressType, p *field.Path) field.ErrorList {
	if len(eps) > maxSliceEndpoints {
		return field.ErrorList{field.TooMany(p, len(eps), maxSliceEndpoints)}
	}
	var errs field.ErrorList
	for i := range eps {
		ep := &eps[i]
		ip := p.Index(i)
		ap := ip.Child("addresses")
		switch {
		case len(ep.Addresses) == 0:
			errs = append(errs, field.Required(ap, ""))
		case len(ep.Addresses) > maxSliceAddresses:
			errs = append(errs, field.TooMany(ap, len(ep.Addresses), maxSliceAddresses))
		}
		for j, addr := range ep.Addresses {
			errs = append(errs, validateSliceAddress(addr, typ, ap, ap.Index(j))...)
		}
		if ep.NodeName != nil {
			errs = append(errs, dns1123Subdomain(*ep.NodeName, ip.Child("nodeName"))...)
		}
		tp := ip.Child("deprecatedTopology")
		if len(ep.DeprecatedTopology) > maxSliceTopologyLabels {
			errs = append(errs, field.TooMany(tp, len(ep.DeprecatedTopology), maxSliceTopologyLabels))
		}
		errs = append(errs, metav1validation.ValidateLabels(ep.DeprecatedTopology, tp)...)
		if _, ok := ep.DeprecatedTopology[corev1.LabelTopologyZone]; ok {
			errs = append(errs, field.InternalError(tp.Key(corev1.LabelTopologyZone), fmt.Errorf("reserved key was not removed in conversion")))
		}
		if ep.Hostname != nil {
			errs = append(errs, dns1123Label(*ep.Hostname, ip.Child("hostname"))...)
		}
		if ep.Hints != nil {
			errs = append(errs, validateSliceHints(ep.Hints, ip.Child("hints"))...)
		}
	}
	return errs
}

// validateSliceAddress checks one address of the slice's type; a family
// mismatch is reported on the list, as upstream does.
func validateSliceAddress(addr string, typ discoveryv1.AddressType, list, p *field.Path) field.ErrorList {
	switch typ {
	case discoveryv1.AddressTypeIPv4:
		if errs := validation.IsValidIPForLegacyField(p, addr, true, nil); len(errs) > 0 {
			return errs
		}
		var errs field.ErrorList
		if !netutils.IsIPv4String(addr) {
			errs = append(errs, field.Invalid(list, addr, "must be an IPv4 address"))
		}
		return append(errs, validateEndpointIP(addr, p)...)
	case discoveryv1.AddressTypeIPv6:
		if errs := validation.IsValidIP(p, addr); len(errs) > 0 {
			return errs
		}
		var errs field.ErrorList
		if !netutils.IsIPv6String(addr) {
			errs = append(errs, field.Invalid(list, addr, "must be an IPv6 address"))
		}
		return append(errs, validateEndpointIP(addr, p)...)
	case discoveryv1.AddressTypeFQDN:
		return validation.IsFullyQualifiedDomainName(p, addr)
	}
	return nil
}

func validateSliceHints(h *discoveryv1.EndpointHints, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	zp := p.Child("forZones")
	if len(h.ForZones) > maxSliceHints {
		return field.ErrorList{field.TooMany(zp, len(h.ForZones), maxSliceHints)}
	}
	for i, z := range h.ForZones {
		np := zp.Index(i).Child("name")
		if slices.ContainsFunc(h.ForZones[:i], func(o discoveryv1.ForZone) bool { return o.Name == z.Name }) {
			errs = append(errs, field.Duplicate(np, z.Name))
		}
		errs = append(errs, invalidMsgs(np, z.Name, validation.IsValidLabelValue(z.Name))...)
	}
	np := p.Child("forNodes")
	if len(h.ForNodes) > maxSliceHints {
		return append(errs, field.TooMany(np, len(h.ForNodes), maxSliceHints))
	}
	for i, n := range h.ForNodes {
		fp := np.Index(i).Child("name")
		if slices.ContainsFunc(h.ForNodes[:i], func(o discoveryv1.ForNode) bool { return o.Name == n.Name }) {
			errs = append(errs, field.Duplicate(fp, n.Name))
		}
		errs = append(errs, dns1123Subdomain(n.Name, fp)...)
	}
	return errs
}

func validateSlicePorts(ports []discoveryv1.EndpointPort, p *field.Path) field.ErrorList {
	if len(ports) > maxSlicePorts {
		return field.ErrorList{field.TooMany(p, len(ports), maxSlicePorts)}
	}
	var errs field.ErrorList
	for i, port := range ports {
		ip := p.Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if name != "" {
			errs = append(errs, dns1123Label(name, ip.Child("name"))...)
		}
		if slices.ContainsFunc(ports[:i], func(o discoveryv1.EndpointPort) bool { return o.Name != nil && *o.Name == name }) {
			errs = append(errs, field.Duplicate(ip.Child("name"), port.Name))
		}
		switch {
		case port.Protocol == nil:
			errs = append(errs, field.Required(ip.Child("protocol"), ""))
		case !oneOf(string(*port.Protocol), sliceProtocols):
			errs = append(errs, field.NotSupported(ip.Child("protocol"), *port.Protocol, sliceProtocols))
		}
		if port.AppProtocol != nil {
			errs = append(errs, invalidMsgs(ip.Child("appProtocol"), *port.AppProtocol, validation.IsQualifiedName(*port.AppProtocol))...)
		}
	}
	return errs
}
