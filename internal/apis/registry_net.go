package apis

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// netAndLegacyResources are the Service address kinds of networking.k8s.io
// (ServiceCIDR, IPAddress) and two legacy core resources that are not
// stored: componentstatuses (answered by probing the components) and
// bindings (the old spelling of pods/binding).
func netAndLegacyResources() []*Resource {
	core := corev1.SchemeGroupVersion
	net := networkingv1.SchemeGroupVersion
	cidrs := def(net, "servicecidrs", "servicecidr", "ServiceCIDR", false,
		func() runtime.Object { return &networkingv1.ServiceCIDR{} },
		func() runtime.Object { return &networkingv1.ServiceCIDRList{} }).with("status")
	ips := def(net, "ipaddresses", "ipaddress", "IPAddress", false,
		func() runtime.Object { return &networkingv1.IPAddress{} },
		func() runtime.Object { return &networkingv1.IPAddressList{} }, "ip")
	for _, r := range []*Resource{cidrs, ips} {
		attachBehaviour(r)
		r.Validate, r.ValidateUpdate = validateNetworking, validateNetworkingUpdate
		r.TableColumns, r.TableRow = networkingTable(r.Kind)
	}

	cs := def(core, "componentstatuses", "componentstatus", "ComponentStatus", false,
		func() runtime.Object { return &corev1.ComponentStatus{} },
		func() runtime.Object { return &corev1.ComponentStatusList{} }, "cs")
	cs.Verbs = []string{"get", "list"}
	cs.TableColumns, cs.TableRow = componentStatusTable()

	bindings := review(core, "bindings", "Binding", true, func() runtime.Object { return &corev1.Binding{} })
	bindings.SingularName = "binding"
	return []*Resource{bindings, cs, cidrs, ips}
}
