package proxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Chains Skiff owns. Every chain and rule it writes is under this prefix,
// so it never touches rules it did not write.
const (
	chainServices   = "SKIFF-SERVICES"
	chainNodePorts  = "SKIFF-NODEPORTS"
	chainPost       = "SKIFF-POSTROUTING"
	chainMarkMasq   = "SKIFF-MARK-MASQ"
	chainFilterSvc  = "SKIFF-SERVICES"
	chainFilterExt  = "SKIFF-EXTERNAL"
	chainFilterFwd  = "SKIFF-FORWARD"
	masqMark        = "0x4000/0x4000"
	chainPrefix     = "SKIFF-"
	affinityList    = "SKIFF-SEP-" // recent-module list names, one per endpoint
	serviceChain    = "SKIFF-SVC-"
	externalChain   = "SKIFF-EXT-"
	localOnlyChain  = "SKIFF-SVL-"
	maxChainNameLen = 28 // iptables' limit is 28 characters
)

// jumps are the rules in built-in chains that lead into Skiff's chains.
var jumps = []struct{ table, chain, rule string }{
	{"nat", "PREROUTING", "-m comment --comment \"skiff service portals\" -j " + chainServices},
	{"nat", "OUTPUT", "-m comment --comment \"skiff service portals\" -j " + chainServices},
	{"nat", "POSTROUTING", "-m comment --comment \"skiff postrouting rules\" -j " + chainPost},
	{"filter", "INPUT", "-m conntrack --ctstate NEW -m comment --comment \"skiff externally-visible service portals\" -j " + chainFilterExt},
	{"filter", "FORWARD", "-m conntrack --ctstate NEW -m comment --comment \"skiff service portals\" -j " + chainFilterSvc},
	{"filter", "FORWARD", "-m comment --comment \"skiff forwarding rules\" -j " + chainFilterFwd},
	{"filter", "OUTPUT", "-m conntrack --ctstate NEW -m comment --comment \"skiff service portals\" -j " + chainFilterSvc},
}

// servicePort is one port of one Service with its usable endpoints.
type servicePort struct {
	key       string // ns/name:port
	svc       *v1.Service
	port      v1.ServicePort
	endpoints []endpoint // all usable, sorted
}

type endpoint struct {
	ip    string
	port  int32
	local bool
}

func (e endpoint) String() string { return net.JoinHostPort(e.ip, strconv.Itoa(int(e.port))) }

// chainName makes a short, stable chain name from a prefix and key, as
// iptables limits names to 28 characters.
func chainName(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	enc := base32.StdEncoding.EncodeToString(sum[:])
	return (prefix + enc)[:maxChainNameLen]
}

func proto(p v1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// ruleset is the whole desired state of Skiff's chains in nat and filter.
type ruleset struct {
	natChains, filterChains []string
	nat, filter             []string
	udpClusterIPs           map[string]bool // service IPs with UDP ports
	hairpin                 map[string]bool // endpoint IPs, for hairpin masquerading
	rules                   int
}

func (r *ruleset) natRule(format string, a ...any) {
	r.nat = append(r.nat, fmt.Sprintf(format, a...))
	r.rules++
}

func (r *ruleset) filterRule(format string, a ...any) {
	r.filter = append(r.filter, fmt.Sprintf(format, a...))
	r.rules++
}

// buildRules renders the iptables state for the given service ports: the
// ClusterIP, externalIP, load-balancer and NodePort entry points, the
// per-service chains that pick an endpoint at random (or sticky by client
// IP), and the per-endpoint chains that DNAT.
func buildRules(ports []*servicePort, clusterCIDR string) *ruleset {
	r := &ruleset{udpClusterIPs: map[string]bool{}, hairpin: map[string]bool{}}
	r.natChains = []string{chainServices, chainNodePorts, chainPost, chainMarkMasq}
	r.filterChains = []string{chainFilterSvc, chainFilterExt, chainFilterFwd}

	r.natRule("-A %s -j MARK --or-mark %s", chainMarkMasq, strings.Split(masqMark, "/")[0])
	// Forwarded service traffic is accepted even where FORWARD drops.
	r.filterRule("-A %s -m mark --mark %s -j ACCEPT", chainFilterFwd, masqMark)
	r.filterRule("-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", chainFilterFwd)

	sort.Slice(ports, func(i, j int) bool { return ports[i].key < ports[j].key })
	var nodePortRules []string
	for _, sp := range ports {
		svc, p := sp.svc, sp.port
		pr := proto(p.Protocol)
		comment := fmt.Sprintf("-m comment --comment %q", sp.key)
		clusterIPs := clusterIPsOf(svc)
		if pr == "udp" {
			for _, ip := range clusterIPs {
				r.udpClusterIPs[ip] = true
			}
		}
		internalEPs := sp.endpoints
		if svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal {
			internalEPs = localOnly(sp.endpoints)
		}
		externalLocal := svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal &&
			(svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer)
		externalIPs := append([]string{}, svc.Spec.ExternalIPs...)
		if svc.Spec.Type == v1.ServiceTypeLoadBalancer {
			for _, ing := range svc.Status.LoadBalancer.Ingress {
				if ing.IP != "" {
					externalIPs = append(externalIPs, ing.IP)
				}
			}
		}
		nodePort := p.NodePort != 0 && (svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer)

		if len(sp.endpoints) == 0 {
			// No endpoints: refuse at once rather than let clients hang.
			for _, ip := range clusterIPs {
				r.filterRule("-A %s %s -m addrtype ! --dst-type LOCAL -d %s -p %s --dport %d -j REJECT --reject-with icmp-port-unreachable", chainFilterSvc, comment, ip, pr, p.Port)
				r.filterRule("-A %s %s -d %s -p %s --dport %d -j REJECT --reject-with icmp-port-unreachable", chainFilterExt, comment, ip, pr, p.Port)
			}
			for _, ip := range externalIPs {
				r.filterRule("-A %s %s -d %s -p %s --dport %d -j REJECT --reject-with icmp-port-unreachable", chainFilterExt, comment, ip, pr, p.Port)
			}
			if nodePort {
				r.filterRule("-A %s %s -m addrtype --dst-type LOCAL -p %s --dport %d -j REJECT --reject-with icmp-port-unreachable", chainFilterExt, comment, pr, p.NodePort)
			}
			continue
		}

		svcChain := chainName(serviceChain, sp.key)
		r.natChains = append(r.natChains, svcChain)
		for _, ip := range clusterIPs {
			if clusterCIDR != "" {
				r.natRule("-A %s %s -d %s -p %s --dport %d ! -s %s -j %s", chainServices, comment, ip, pr, p.Port, clusterCIDR, chainMarkMasq)
			}
			if len(internalEPs) == 0 {
				r.filterRule("-A %s %s -d %s -p %s --dport %d -j REJECT --reject-with icmp-port-unreachable", chainFilterSvc, comment, ip, pr, p.Port)
				continue
			}
			r.natRule("-A %s %s -d %s -p %s --dport %d -j %s", chainServices, comment, ip, pr, p.Port, svcChain)
		}
		r.endpointRules(svcChain, sp, internalEPs, pr, comment)

		if len(externalIPs) == 0 && !nodePort {
			continue
		}
		// External entry points go through an EXT chain: SNAT and all
		// endpoints (Cluster), or local endpoints only and the client's
		// address kept (Local).
		if externalLocal && len(localOnly(sp.endpoints)) == 0 {
			// Local policy and no endpoint here: external traffic is
			// dropped, as upstream does, instead of leaving the node.
			for _, ip := range externalIPs {
				r.filterRule("-A %s %s -d %s -p %s --dport %d -j DROP", chainFilterExt, comment, ip, pr, p.Port)
			}
			if nodePort {
				r.filterRule("-A %s %s -m addrtype --dst-type LOCAL -p %s --dport %d -j DROP", chainFilterExt, comment, pr, p.NodePort)
			}
			continue
		}
		extChain := chainName(externalChain, sp.key)
		r.natChains = append(r.natChains, extChain)
		if externalLocal {
			localChain := chainName(localOnlyChain, sp.key)
			r.natChains = append(r.natChains, localChain)
			// Pods of the cluster reaching a Local service still get all
			// endpoints, as upstream does.
			if clusterCIDR != "" {
				r.natRule("-A %s %s -s %s -j %s", extChain, comment, clusterCIDR, svcChain)
			}
			r.natRule("-A %s %s -j %s", extChain, comment, localChain)
			r.endpointRules(localChain, sp, localOnly(sp.endpoints), pr, comment)
		} else {
			r.natRule("-A %s %s -j %s", extChain, comment, chainMarkMasq)
			r.natRule("-A %s %s -j %s", extChain, comment, svcChain)
		}
		for _, ip := range externalIPs {
			r.natRule("-A %s %s -d %s -p %s --dport %d -j %s", chainServices, comment, ip, pr, p.Port, extChain)
		}
		if nodePort {
			nodePortRules = append(nodePortRules, fmt.Sprintf("-A %s %s -p %s --dport %d -j %s", chainNodePorts, comment, pr, p.NodePort, extChain))
		}
	}
	// NodePorts last: only traffic to a local address that matched no
	// service IP above.
	r.natRule("-A %s -m comment --comment \"skiff node ports; this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j %s", chainServices, chainNodePorts)
	for _, rule := range nodePortRules {
		r.natRule("%s", rule)
	}
	r.postrouting(clusterCIDR)
	return r
}

// postrouting writes SKIFF-POSTROUTING: pod egress, hairpin traffic (an
// endpoint reaching itself through its service: source and translated
// destination are the same address), then whatever was marked for SNAT.
func (r *ruleset) postrouting(clusterCIDR string) {
	if clusterCIDR != "" {
		// Pods reach the outside world (and nodes) from their node's
		// address; pod-to-pod traffic keeps its source.
		r.natRule("-A %s -s %s ! -d %s -m comment --comment \"skiff pod egress\" -j MASQUERADE --random-fully", chainPost, clusterCIDR, clusterCIDR)
	}
	ips := make([]string, 0, len(r.hairpin))
	for ip := range r.hairpin {
		ips = append(ips, ip)
	}
	sort.Strings(ips)
	for _, ip := range ips {
		r.natRule("-A %s -s %s -d %s -m comment --comment \"skiff hairpin\" -j MASQUERADE", chainPost, ip, ip)
	}
	r.natRule("-A %s -m mark ! --mark %s -j RETURN", chainPost, masqMark)
	r.natRule("-A %s -j MARK --xor-mark %s", chainPost, strings.Split(masqMark, "/")[0])
	r.natRule("-A %s -m comment --comment \"skiff service traffic requiring SNAT\" -j MASQUERADE --random-fully", chainPost)
}

// endpointRules fills a service chain: sticky sessions first, then a
// uniform random choice (probability 1/n, 1/(n-1), ... 1) that DNATs
// directly. No chain per endpoint: iptables-nft's restore slows down with
// the number of chains far more than with rules.
func (r *ruleset) endpointRules(chain string, sp *servicePort, eps []endpoint, pr, comment string) {
	affinity := sp.svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP
	timeout := int32(v1.DefaultClientIPServiceAffinitySeconds)
	if c := sp.svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		timeout = *c.ClientIP.TimeoutSeconds
	}
	// The recent module's list names, one per endpoint of the service.
	names := make([]string, len(eps))
	for i, ep := range eps {
		names[i] = chainName(affinityList, sp.key+"/"+ep.String())
		r.hairpin[ep.ip] = true
	}
	if affinity {
		for i, ep := range eps {
			r.natRule("-A %s %s -m recent --name %s --mask 255.255.255.255 --rsource --rcheck --seconds %d --reap -p %s -j DNAT --to-destination %s",
				chain, comment, names[i], timeout, pr, ep)
		}
	}
	for i, ep := range eps {
		random := ""
		if left := len(eps) - i; left > 1 {
			random = fmt.Sprintf(" -m statistic --mode random --probability %.10f", 1/float64(left))
		}
		remember := ""
		if affinity {
			remember = fmt.Sprintf(" -m recent --name %s --mask 255.255.255.255 --rsource --set", names[i])
		}
		r.natRule("-A %s %s%s%s -p %s -j DNAT --to-destination %s", chain, comment, random, remember, pr, ep)
	}
}

func localOnly(eps []endpoint) []endpoint {
	var out []endpoint
	for _, e := range eps {
		if e.local {
			out = append(out, e)
		}
	}
	return out
}

func clusterIPsOf(svc *v1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []string
	for _, ip := range ips {
		if parsed := net.ParseIP(ip); parsed != nil && parsed.To4() != nil {
			out = append(out, ip)
		}
	}
	return out
}

// servicePorts joins Services with their EndpointSlices: for each port, the
// ready endpoints (or, when none is ready, the serving terminating ones),
// deduplicated across slices. Headless and ExternalName services have none.
func servicePorts(svcs []*v1.Service, slices map[string][]*discoveryv1.EndpointSlice, node string) []*servicePort {
	var out []*servicePort
	for _, svc := range svcs {
		if svc.Spec.Type == v1.ServiceTypeExternalName || svc.Spec.ClusterIP == v1.ClusterIPNone || svc.Spec.ClusterIP == "" {
			continue
		}
		svcSlices := slices[svc.Namespace+"/"+svc.Name]
		for _, p := range svc.Spec.Ports {
			sp := &servicePort{key: fmt.Sprintf("%s/%s:%s", svc.Namespace, svc.Name, portKey(p)), svc: svc, port: p}
			var ready, terminating []endpoint
			seen := map[string]bool{}
			for _, sl := range svcSlices {
				if sl.AddressType != discoveryv1.AddressTypeIPv4 {
					continue
				}
				port, ok := slicePort(sl, p)
				if !ok {
					continue
				}
				for _, e := range sl.Endpoints {
					if len(e.Addresses) == 0 {
						continue
					}
					ep := endpoint{ip: e.Addresses[0], port: port, local: e.NodeName != nil && *e.NodeName == node}
					if seen[ep.String()] {
						continue
					}
					seen[ep.String()] = true
					isReady := e.Conditions.Ready == nil || *e.Conditions.Ready
					serving := e.Conditions.Serving != nil && *e.Conditions.Serving
					terminatingNow := e.Conditions.Terminating != nil && *e.Conditions.Terminating
					switch {
					case isReady && !terminatingNow:
						ready = append(ready, ep)
					case serving && terminatingNow:
						terminating = append(terminating, ep)
					}
				}
			}
			sp.endpoints = ready
			if len(ready) == 0 {
				sp.endpoints = terminating
			}
			sort.Slice(sp.endpoints, func(i, j int) bool { return sp.endpoints[i].String() < sp.endpoints[j].String() })
			out = append(out, sp)
		}
	}
	return out
}

func portKey(p v1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port)) + "/" + proto(p.Protocol)
}

// slicePort finds the slice port for a service port: by name, as the
// endpoints controller names them after the service's ports.
func slicePort(sl *discoveryv1.EndpointSlice, p v1.ServicePort) (int32, bool) {
	for _, sp := range sl.Ports {
		name := ""
		if sp.Name != nil {
			name = *sp.Name
		}
		proto := v1.ProtocolTCP
		if sp.Protocol != nil {
			proto = *sp.Protocol
		}
		pp := p.Protocol
		if pp == "" {
			pp = v1.ProtocolTCP
		}
		if name == p.Name && proto == pp && sp.Port != nil {
			return *sp.Port, true
		}
	}
	return 0, false
}

// render writes the iptables-restore input: every Skiff chain declared
// (which flushes it), the rules, and deletions of chains that are gone.
func (r *ruleset) render(staleNat, staleFilter []string) []byte {
	var b strings.Builder
	section := func(table string, chains, rules, stale []string) {
		fmt.Fprintf(&b, "*%s\n", table)
		for _, c := range chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for _, c := range stale {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for _, rule := range rules {
			b.WriteString(rule)
			b.WriteByte('\n')
		}
		for _, c := range stale {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	section("filter", r.filterChains, r.filter, staleFilter)
	section("nat", r.natChains, r.nat, staleNat)
	return []byte(b.String())
}
