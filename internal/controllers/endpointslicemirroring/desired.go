package endpointslicemirroring

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	netutils "k8s.io/utils/net"
)

// MaxEndpointsPerSubset is how many addresses of one Endpoints subset (and
// so of one mirrored slice) are mirrored, upstream's default.
const MaxEndpointsPerSubset = 1000

// groupKey identifies one mirrored slice: an address type and a set of
// ports. Subsets with equal ports share a slice, as upstream.
type groupKey string

func keyOf(addrType discoveryv1.AddressType, ports []discoveryv1.EndpointPort) groupKey {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		parts = append(parts, fmt.Sprintf("%s/%d/%s/%s", deref(p.Name), derefInt(p.Port), derefProto(p.Protocol), deref(p.AppProtocol)))
	}
	// Order does not make ports different.
	sort.Strings(parts)
	return groupKey(string(addrType) + "|" + strings.Join(parts, ","))
}

// group is the desired content of one mirrored slice.
type group struct {
	addrType  discoveryv1.AddressType
	ports     []discoveryv1.EndpointPort
	endpoints []discoveryv1.Endpoint
	seen      map[string]bool
}

// desired is the slice content an Endpoints object asks for.
type desired struct {
	groups map[groupKey]*group
	order  []groupKey
	// invalid counts addresses that are not IPs; truncated those beyond
	// MaxEndpointsPerSubset.
	invalid, truncated int
}

// desiredSlices splits an Endpoints object's subsets by address type and
// ports; ready addresses first, at most MaxEndpointsPerSubset per subset.
func desiredSlices(ep *corev1.Endpoints) *desired {
	d := &desired{groups: map[groupKey]*group{}}
	for _, ss := range ep.Subsets {
		ports := mirrorPorts(ss.Ports)
		added := 0
		add := func(addrs []corev1.EndpointAddress, ready bool) {
			for _, a := range addrs {
				if added >= MaxEndpointsPerSubset {
					d.truncated++
					continue
				}
				e, addrType, ok := mirrorAddress(a, ready)
				if !ok {
					d.invalid++
					continue
				}
				added++
				d.add(addrType, ports, e)
			}
		}
		add(ss.Addresses, true)
		add(ss.NotReadyAddresses, false)
	}
	return d
}

func (d *desired) add(addrType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, e discoveryv1.Endpoint) {
	k := keyOf(addrType, ports)
	g := d.groups[k]
	if g == nil {
		g = &group{addrType: addrType, ports: ports, seen: map[string]bool{}}
		d.groups[k] = g
		d.order = append(d.order, k)
	}
	// The same endpoint (address, hostname, target) listed twice for the
	// same ports is mirrored once; a slice holds at most
	// MaxEndpointsPerSubset of them.
	id := e.Addresses[0] + "|" + deref(e.Hostname)
	if e.TargetRef != nil {
		id += "|" + e.TargetRef.Namespace + "/" + e.TargetRef.Name
	}
	if g.seen[id] || len(g.endpoints) >= MaxEndpointsPerSubset {
		return
	}
	g.seen[id] = true
	g.endpoints = append(g.endpoints, e)
}

// mirrorAddress converts one Endpoints address; false when it is not an IP.
func mirrorAddress(a corev1.EndpointAddress, ready bool) (discoveryv1.Endpoint, discoveryv1.AddressType, bool) {
	ip := netutils.ParseIPSloppy(a.IP)
	if ip == nil {
		return discoveryv1.Endpoint{}, "", false
	}
	addrType := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		addrType = discoveryv1.AddressTypeIPv6
	}
	e := discoveryv1.Endpoint{
		// Re-formatted, so irregular spellings become canonical.
		Addresses:  []string{ip.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		NodeName:   a.NodeName,
	}
	if a.TargetRef != nil {
		e.TargetRef = a.TargetRef.DeepCopy()
	}
	if a.Hostname != "" {
		h := a.Hostname
		e.Hostname = &h
	}
	return e, addrType, true
}

// mirrorPorts converts a subset's ports; names are always set (possibly
// empty) as upstream does.
func mirrorPorts(in []corev1.EndpointPort) []discoveryv1.EndpointPort {
	out := make([]discoveryv1.EndpointPort, 0, len(in))
	for _, p := range in {
		name, port, proto := p.Name, p.Port, p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		ep := discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto}
		if p.AppProtocol != nil {
			ap := *p.AppProtocol
			ep.AppProtocol = &ap
		}
		out = append(out, ep)
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(i *int32) int32 {
	if i == nil {
		return 0
	}
	return *i
}

func derefProto(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return corev1.ProtocolTCP
	}
	return *p
}
