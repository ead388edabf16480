package sim

import (
	"net/netip"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestIPAM(t *testing.T) {
	a := newIPAM()
	if _, err := a.allocate("x", "n"); err == nil {
		t.Fatal("allocated on a node without a pod CIDR")
	}
	a.setPrefix("n", netip.MustParsePrefix("10.128.3.0/24"))
	// .2 is held by a pod of an earlier run.
	a.reserve("old", "n", netip.MustParseAddr("10.128.3.2"))
	seen := map[netip.Addr]bool{netip.MustParseAddr("10.128.3.2"): true}
	for i := range 252 {
		ip, err := a.allocate(types.UID(strconv.Itoa(i)), "n")
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		if seen[ip] || ip.As4()[3] < 2 || ip.As4()[3] == 255 {
			t.Fatalf("pod %d got %s (duplicate, network, gateway or broadcast)", i, ip)
		}
		seen[ip] = true
	}
	if again, _ := a.allocate("7", "n"); !seen[again] {
		t.Errorf("a retried allocation got a new address %s", again)
	}
	if _, err := a.allocate("full", "n"); err == nil {
		t.Fatal("allocated from a full /24")
	}
	a.release("old")
	ip, err := a.allocate("new", "n")
	if err != nil || ip != netip.MustParseAddr("10.128.3.2") {
		t.Fatalf("after a release got %s, %v; want the freed 10.128.3.2", ip, err)
	}
}

func TestNodeAddresses(t *testing.T) {
	p := netip.MustParsePrefix("10.128.0.0/9")
	n := newSimNode("sim-", 4999, p)
	if n.name != "sim-4999" || n.podCIDR.String() != "10.147.135.0/24" || n.address != "172.16.19.136" {
		t.Errorf("node 4999: %s %s %s", n.name, n.podCIDR, n.address)
	}
}
