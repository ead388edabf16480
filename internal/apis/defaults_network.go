package apis

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// defaultNetwork fills upstream's defaults for the networking.k8s.io and
// discovery.k8s.io kinds.
func defaultNetwork(obj runtime.Object) {
	switch o := obj.(type) {
	case *discoveryv1.EndpointSlice:
		for i := range o.Ports {
			p := &o.Ports[i]
			if p.Name == nil {
				p.Name = ptr.To("")
			}
			if p.Protocol == nil {
				p.Protocol = ptr.To(corev1.ProtocolTCP)
			}
		}
	case *networkingv1.NetworkPolicy:
		defaultNetworkPolicy(&o.Spec)
	case *networkingv1.IngressClass:
		if p := o.Spec.Parameters; p != nil && p.Scope == nil {
			p.Scope = ptr.To(networkingv1.IngressClassParametersReferenceScopeCluster)
		}
	}
}

func defaultNetworkPolicy(s *networkingv1.NetworkPolicySpec) {
	for i := range s.Ingress {
		defaultNetworkPolicyPorts(s.Ingress[i].Ports)
	}
	for i := range s.Egress {
		defaultNetworkPolicyPorts(s.Egress[i].Ports)
	}
	if len(s.PolicyTypes) == 0 {
		// Every policy selects ingress; egress only when it has rules.
		s.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(s.Egress) > 0 {
			s.PolicyTypes = append(s.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
}

func defaultNetworkPolicyPorts(ports []networkingv1.NetworkPolicyPort) {
	for i := range ports {
		if ports[i].Protocol == nil {
			ports[i].Protocol = ptr.To(corev1.ProtocolTCP)
		}
	}
}
