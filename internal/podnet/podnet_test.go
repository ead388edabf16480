package podnet

import (
	"net"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, cidr, ip string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}}}
}

func TestDesiredRoutes(t *testing.T) {
	got := desired("n1", net.ParseIP("192.0.2.11"), []*corev1.Node{
		node("n1", "10.42.0.0/24", "192.0.2.11"),
		node("n2", "10.42.1.0/24", "192.0.2.12"),
		node("n3", "", "192.0.2.13"),             // no pod CIDR yet
		node("n4", "10.42.3.0/24", "bogus"),      // no usable address
		node("n5", "10.42.5.0/24", "192.0.2.11"), // another agent on this host
	})
	if len(got) != 1 || got["10.42.1.0/24"] != "192.0.2.12" {
		t.Errorf("desired = %v", got)
	}
}

func TestParseRoutes(t *testing.T) {
	got := parseRoutes("10.42.1.0/24 via 192.0.2.12 dev eth0 proto 181\n10.42.2.0/24 via 192.0.2.13 dev eth0 proto 181 onlink\n")
	if len(got) != 2 || got["10.42.1.0/24"] != "192.0.2.12" || got["10.42.2.0/24"] != "192.0.2.13" {
		t.Errorf("parseRoutes = %v", got)
	}
}
