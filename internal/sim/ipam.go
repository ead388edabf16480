package sim

import (
	"fmt"
	"net/netip"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// ipam hands out pod IPs from each node's pod CIDR, remembering them by
// pod UID so that a retried start gets the same address.
type ipam struct {
	mu    sync.Mutex
	nodes map[string]*nodeIPs
	pods  map[types.UID]podIP
}

type nodeIPs struct {
	prefix netip.Prefix // invalid until the node is registered
	used   map[netip.Addr]bool
	next   netip.Addr // where the next search starts, so freed IPs are reused last
}

type podIP struct {
	node string
	ip   netip.Addr
}

func newIPAM() *ipam {
	return &ipam{nodes: map[string]*nodeIPs{}, pods: map[types.UID]podIP{}}
}

func (a *ipam) node(name string) *nodeIPs {
	n := a.nodes[name]
	if n == nil {
		n = &nodeIPs{used: map[netip.Addr]bool{}}
		a.nodes[name] = n
	}
	return n
}

func (a *ipam) setPrefix(node string, p netip.Prefix) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.node(node)
	if n.prefix != p {
		n.prefix, n.next = p, netip.Addr{}
	}
}

// reserve records an address a running pod already has (from an earlier
// run).
func (a *ipam) reserve(uid types.UID, node string, ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pods[uid]; ok {
		return
	}
	a.node(node).used[ip] = true
	a.pods[uid] = podIP{node, ip}
}

// allocate returns the pod's address on node, picking a free one the first
// time. The first two addresses (network and gateway) and the broadcast
// address are never given out.
func (a *ipam) allocate(uid types.UID, node string) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pods[uid]; ok {
		return p.ip, nil
	}
	n := a.node(node)
	if !n.prefix.IsValid() {
		return netip.Addr{}, fmt.Errorf("node %s has no pod CIDR yet", node)
	}
	first := n.prefix.Addr().Next().Next()
	size := 1 << (32 - n.prefix.Bits())
	if size > 1<<16 {
		size = 1 << 16
	}
	if !n.next.IsValid() || !n.prefix.Contains(n.next) {
		n.next = first
	}
	ip := n.next
	for range size {
		if !n.prefix.Contains(ip) || !n.prefix.Contains(ip.Next()) {
			ip = first // wrapped past the broadcast address
		}
		if !n.used[ip] {
			n.used[ip] = true
			n.next = ip.Next()
			a.pods[uid] = podIP{node, ip}
			return ip, nil
		}
		ip = ip.Next()
	}
	return netip.Addr{}, fmt.Errorf("node %s: pod CIDR %s is full", node, n.prefix)
}

// release frees the pod's address, if it has one.
func (a *ipam) release(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pods[uid]
	if !ok {
		return
	}
	delete(a.pods, uid)
	if n := a.nodes[p.node]; n != nil {
		delete(n.used, p.ip)
	}
}
