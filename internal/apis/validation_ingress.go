package apis

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"
)

// Limits and enumerations of the networking.k8s.io kinds, as upstream.
const maxIngressClassControllerLen = 250

var (
	ingressPathTypes     = []string{string(networkingv1.PathTypeExact), string(networkingv1.PathTypeImplementationSpecific), string(networkingv1.PathTypePrefix)}
	ingressParamScopes   = []string{networkingv1.IngressClassParametersReferenceScopeCluster, networkingv1.IngressClassParametersReferenceScopeNamespace}
	netpolProtocols      = []string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP), string(corev1.ProtocolSCTP)}
	netpolPolicyTypes    = []string{string(networkingv1.PolicyTypeIngress), string(networkingv1.PolicyTypeEgress)}
	badIngressPathParts  = []string{"//", "/./", "/../", "%2f", "%2F"}
	badIngressPathEnding = []string{"/..", "/."}
)

// ingressClassAnnotation is the legacy way to name an Ingress's class.
const ingressClassAnnotation = "kubernetes.io/ingress.class"

func validateIngress(ing *networkingv1.Ingress, old *networkingv1.Ingress) field.ErrorList {
	p := field.NewPath("spec")
	s := &ing.Spec
	var errs field.ErrorList
	if len(s.Rules) == 0 && s.DefaultBackend == nil {
		errs = append(errs, field.Invalid(p, s.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if s.DefaultBackend != nil {
		errs = append(errs, validateIngressBackend(s.DefaultBackend, p.Child("defaultBackend"))...)
	}
	for i := range s.Rules {
		errs = append(errs, validateIngressRule(&s.Rules[i], p.Child("rules").Index(i))...)
	}
	for i, tls := range s.TLS {
		tp := p.Child("tls").Index(i)
		for j, host := range tls.Hosts {
			errs = append(errs, validateIngressHost(host, tp.Child("hosts").Index(j))...)
		}
		if tls.SecretName != "" {
			errs = append(errs, invalidMsgs(tp.Child("secretName"), tls.SecretName, validation.IsDNS1123Subdomain(tls.SecretName))...)
		}
	}
	if s.IngressClassName != nil {
		errs = append(errs, invalidMsgs(p.Child("ingressClassName"), *s.IngressClassName, validation.IsDNS1123Subdomain(*s.IngressClassName))...)
	}
	if old == nil {
		if v, ok := ing.Annotations[ingressClassAnnotation]; ok && s.IngressClassName != nil && v != *s.IngressClassName {
			errs = append(errs, field.Invalid(field.NewPath("annotations").Child(ingressClassAnnotation), v, "must match `ingressClassName` when both are specified"))
		}
	}
	return errs
}

// validateIngressHost checks a host name, which may start with a wildcard.
func validateIngressHost(host string, p *field.Path) field.ErrorList {
	if strings.Contains(host, "*") {
		return invalidMsgs(p, host, validation.IsWildcardDNS1123Subdomain(host))
	}
	return invalidMsgs(p, host, validation.IsDNS1123Subdomain(host))
}

func validateIngressRule(r *networkingv1.IngressRule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.Host != "" {
		if netutils.ParseIPSloppy(r.Host) != nil {
			errs = append(errs, field.Invalid(p.Child("host"), r.Host, "must be a DNS name, not an IP address"))
		}
		errs = append(errs, validateIngressHost(r.Host, p.Child("host"))...)
	}
	if r.HTTP == nil {
		return errs
	}
	hp := p.Child("http", "paths")
	if len(r.HTTP.Paths) == 0 {
		errs = append(errs, field.Required(hp, ""))
	}
	for i := range r.HTTP.Paths {
		errs = append(errs, validateIngressPath(&r.HTTP.Paths[i], hp.Index(i))...)
	}
	return errs
}

func validateIngressPath(path *networkingv1.HTTPIngressPath, p *field.Path) field.ErrorList {
	if path.PathType == nil {
		return field.ErrorList{field.Required(p.Child("pathType"), "pathType must be specified")}
	}
	var errs field.ErrorList
	pp := p.Child("path")
	switch t := *path.PathType; t {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(path.Path, "/") {
			errs = append(errs, field.Invalid(pp, path.Path, "must be an absolute path"))
		}
		for _, part := range badIngressPathParts {
			if strings.Contains(path.Path, part) {
				errs = append(errs, field.Invalid(pp, path.Path, fmt.Sprintf("must not contain '%s'", part)))
			}
		}
		for _, end := range badIngressPathEnding {
			if strings.HasSuffix(path.Path, end) {
				errs = append(errs, field.Invalid(pp, path.Path, fmt.Sprintf("cannot end with '%s'", end)))
			}
		}
	case networkingv1.PathTypeImplementationSpecific:
		if path.Path != "" && !strings.HasPrefix(path.Path, "/") {
			errs = append(errs, field.Invalid(pp, path.Path, "must be an absolute path"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("pathType"), t, ingressPathTypes))
	}
	return append(errs, validateIngressBackend(&path.Backend, p.Child("backend"))...)
}

func validateIngressBackend(b *networkingv1.IngressBackend, p *field.Path) field.ErrorList {
	switch {
	case b.Resource != nil && b.Service != nil:
		return field.ErrorList{field.Invalid(p, "", "cannot set both resource and service backends")}
	case b.Resource != nil:
		r := b.Resource
		return validateTypedReference(r.APIGroup, r.Kind, r.Name, p.Child("resource"))
	case b.Service == nil:
		return field.ErrorList{field.Invalid(p, "", "resource or service backend is required")}
	}
	var errs field.ErrorList
	svc := b.Service
	np := p.Child("service", "name")
	if svc.Name == "" {
		errs = append(errs, field.Required(np, ""))
	} else {
		errs = append(errs, invalidMsgs(np, svc.Name, apivalidation.NameIsDNSLabel(svc.Name, false))...)
	}
	switch port := svc.Port; {
	case port.Name != "" && port.Number != 0:
		errs = append(errs, field.Invalid(p, "", "cannot set both port name & port number"))
	case port.Name != "":
		errs = append(errs, invalidMsgs(p.Child("service", "port", "name"), port.Name, validation.IsValidPortName(port.Name))...)
	case port.Number != 0:
		for _, msg := range validation.IsValidPortNum(int(port.Number)) {
			errs = append(errs, field.Invalid(p.Child("service", "port", "number"), port.Number, msg))
		}
	default:
		errs = append(errs, field.Required(p, "port name or number is required"))
	}
	return errs
}

// validateTypedReference checks the group, kind and name of a reference
// to a resource backend or class parameters.
func validateTypedReference(group *string, kind, name string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if group != nil {
		errs = append(errs, invalidMsgs(p.Child("apiGroup"), *group, validation.IsDNS1123Subdomain(*group))...)
	}
	for _, f := range [...]struct{ name, v string }{{"kind", kind}, {"name", name}} {
		if f.v == "" {
			errs = append(errs, field.Required(p.Child(f.name), ""))
		} else {
			errs = append(errs, invalidMsgs(p.Child(f.name), f.v, content.IsPathSegmentName(f.v))...)
		}
	}
	return errs
}

func validateIngressClass(c *networkingv1.IngressClass) field.ErrorList {
	p := field.NewPath("spec")
	var errs field.ErrorList
	if len(c.Spec.Controller) > maxIngressClassControllerLen {
		errs = append(errs, field.TooLong(p.Child("controller"), "", maxIngressClassControllerLen))
	}
	errs = append(errs, validation.IsDomainPrefixedPath(p.Child("controller"), c.Spec.Controller)...)
	params := c.Spec.Parameters
	if params == nil {
		return errs
	}
	pp := p.Child("parameters")
	errs = append(errs, validateTypedReference(params.APIGroup, params.Kind, params.Name, pp)...)
	if params.Scope == nil {
		return append(errs, field.Required(pp.Child("scope"), ""))
	}
	switch *params.Scope {
	case networkingv1.IngressClassParametersReferenceScopeNamespace:
		if params.Namespace == nil {
			errs = append(errs, field.Required(pp.Child("namespace"), "`parameters.scope` is set to 'Namespace'"))
		} else {
			errs = append(errs, invalidMsgs(pp.Child("namespace"), *params.Namespace, apivalidation.ValidateNamespaceName(*params.Namespace, false))...)
		}
	case networkingv1.IngressClassParametersReferenceScopeCluster:
		if params.Namespace != nil {
			errs = append(errs, field.Forbidden(pp.Child("namespace"), "`parameters.scope` is set to 'Cluster'"))
		}
	default:
		errs = append(errs, field.NotSupported(pp.Child("scope"), *params.Scope, ingressParamScopes))
	}
	return errs
}

// validateNetworkPolicy checks a policy; oldCIDRs are the blocks of the
// stored policy, which stay allowed even if no longer valid.
func validateNetworkPolicy(np *networkingv1.NetworkPolicy, oldCIDRs []string) field.ErrorList {
	p := field.NewPath("spec")
	s := &np.Spec
	opts := metav1validation.LabelSelectorValidationOptions{}
	errs := metav1validation.ValidateLabelSelector(&s.PodSelector, opts, p.Child("podSelector"))
	for i, rule := range s.Ingress {
		rp := p.Child("ingress").Index(i)
		for j := range rule.Ports {
			errs = append(errs, validateNetworkPolicyPort(&rule.Ports[j], rp.Child("ports").Index(j))...)
		}
		for j := range rule.From {
			errs = append(errs, validateNetworkPolicyPeer(&rule.From[j], oldCIDRs, rp.Child("from").Index(j))...)
		}
	}
	for i, rule := range s.Egress {
		rp := p.Child("egress").Index(i)
		for j := range rule.Ports {
			errs = append(errs, validateNetworkPolicyPort(&rule.Ports[j], rp.Child("ports").Index(j))...)
		}
		for j := range rule.To {
			errs = append(errs, validateNetworkPolicyPeer(&rule.To[j], oldCIDRs, rp.Child("to").Index(j))...)
		}
	}
	if len(s.PolicyTypes) > len(netpolPolicyTypes) {
		return append(errs, field.Invalid(p.Child("policyTypes"), &s.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, t := range s.PolicyTypes {
		if !oneOf(string(t), netpolPolicyTypes) {
			errs = append(errs, field.NotSupported(p.Child("policyTypes").Index(i), t, netpolPolicyTypes))
		}
	}
	return errs
}

func validateNetworkPolicyPort(port *networkingv1.NetworkPolicyPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Protocol != nil && !oneOf(string(*port.Protocol), netpolProtocols) {
		errs = append(errs, field.NotSupported(p.Child("protocol"), *port.Protocol, netpolProtocols))
	}
	ep := p.Child("endPort")
	switch {
	case port.Port == nil:
		if port.EndPort != nil {
			errs = append(errs, field.Invalid(ep, *port.EndPort, "may not be specified when `port` is not specified"))
		}
	case port.Port.Type == intstr.Int:
		for _, msg := range validation.IsValidPortNum(int(port.Port.IntVal)) {
			errs = append(errs, field.Invalid(p.Child("port"), port.Port.IntVal, msg))
		}
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				errs = append(errs, field.Invalid(ep, *port.EndPort, "must be greater than or equal to `port`"))
			}
			for _, msg := range validation.IsValidPortNum(int(*port.EndPort)) {
				errs = append(errs, field.Invalid(ep, *port.EndPort, msg))
			}
		}
	default:
		if port.EndPort != nil {
			errs = append(errs, field.Invalid(ep, *port.EndPort, "may not be specified when `port` is non-numeric"))
		}
		errs = append(errs, invalidMsgs(p.Child("port"), port.Port.StrVal, validation.IsValidPortName(port.Port.StrVal))...)
	}
	return errs
}

func validateNetworkPolicyPeer(peer *networkingv1.NetworkPolicyPeer, oldCIDRs []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	opts := metav1validation.LabelSelectorValidationOptions{}
	n := 0
	if peer.PodSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.PodSelector, opts, p.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, opts, p.Child("namespaceSelector"))...)
	}
	if peer.IPBlock != nil {
		n++
		errs = append(errs, validateIPBlock(peer.IPBlock, oldCIDRs, p.Child("ipBlock"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(p, "must specify a peer"))
	case n > 1 && peer.IPBlock != nil:
		errs = append(errs, field.Forbidden(p, "may not specify both ipBlock and another peer"))
	}
	return errs
}

func validateIPBlock(b *networkingv1.IPBlock, oldCIDRs []string, p *field.Path) field.ErrorList {
	cp := p.Child("cidr")
	if b.CIDR == "" {
		return field.ErrorList{field.Required(cp, "")}
	}
	errs := validation.IsValidCIDRForLegacyField(cp, b.CIDR, true, oldCIDRs)
	outer, err := sloppyPrefix(b.CIDR)
	if err != nil {
		return errs
	}
	for i, ex := range b.Except {
		xp := p.Child("except").Index(i)
		errs = append(errs, validation.IsValidCIDRForLegacyField(xp, ex, true, oldCIDRs)...)
		inner, err := sloppyPrefix(ex)
		if err != nil {
			continue
		}
		if !outer.Contains(inner.Addr()) || outer.Bits() >= inner.Bits() {
			errs = append(errs, field.Invalid(xp, ex, "must be a strict subset of `cidr`"))
		}
	}
	return errs
}

// sloppyPrefix parses a CIDR as the legacy fields accept it (leading
// zeros allowed) and masks it to its network.
func sloppyPrefix(s string) (netip.Prefix, error) {
	_, n, err := netutils.ParseCIDRSloppy(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	addr, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), nil
}

// networkPolicyCIDRs lists the blocks a stored policy uses.
func networkPolicyCIDRs(np *networkingv1.NetworkPolicy) []string {
	var out []string
	add := func(peers []networkingv1.NetworkPolicyPeer) {
		for _, peer := range peers {
			if peer.IPBlock != nil {
				out = append(out, peer.IPBlock.CIDR)
				out = append(out, peer.IPBlock.Except...)
			}
		}
	}
	for _, r := range np.Spec.Ingress {
		add(r.From)
	}
	for _, r := range np.Spec.Egress {
		add(r.To)
	}
	return out
}
