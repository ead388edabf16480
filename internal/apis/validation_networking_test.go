package apis

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// causes renders errs as "path: type" lines for comparison.
func causes(errs field.ErrorList) string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Field+": "+string(e.Type))
	}
	return strings.Join(out, "; ")
}

func TestValidateServiceCIDR(t *testing.T) {
	for _, tc := range []struct {
		cidrs []string
		want  string
	}{
		{[]string{"10.0.0.0/24"}, ""},
		{[]string{"10.0.0.0/24", "fd00::/108"}, ""},
		{nil, "spec.cidrs: FieldValueRequired"},
		{[]string{"10.0.0.0/24", "fd00::/108", "10.1.0.0/24"}, "spec.cidrs: FieldValueInvalid"},
		{[]string{"10.0.0.1/24"}, "spec.cidrs[0]: FieldValueInvalid"}, // not canonical
		{[]string{"10.0.0.0/24", "bogus"}, "spec.cidrs[1]: FieldValueInvalid"},
		{[]string{"10.0.0.0/24", "10.1.0.0/24"}, "spec.cidrs: FieldValueInvalid"}, // same family twice
	} {
		got := causes(validateNetworking(&networkingv1.ServiceCIDR{Spec: networkingv1.ServiceCIDRSpec{CIDRs: tc.cidrs}}))
		if got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.cidrs, got, tc.want)
		}
	}
}

func TestValidateServiceCIDRUpdate(t *testing.T) {
	for _, tc := range []struct {
		old, cidrs []string
		want       string
	}{
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.0/24"}, ""},
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.0/24", "fd00::/108"}, ""}, // to dual-stack
		{[]string{"10.0.0.0/24"}, []string{"10.0.1.0/24"}, "spec.cidrs[0]: FieldValueInvalid"},
		{[]string{"10.0.0.0/24"}, []string{"10.0.1.0/24", "fd00::/108"}, "spec.cidrs[0]: FieldValueInvalid"},
		{[]string{"10.0.0.0/24"}, []string{"10.0.0.0/24", "10.2.0.0/24"}, "spec.cidrs: FieldValueInvalid"},
		{[]string{"10.0.0.0/24", "fd00::/108"}, []string{"10.0.0.0/24"}, "spec.cidrs: FieldValueInvalid"},
	} {
		old := &networkingv1.ServiceCIDR{Spec: networkingv1.ServiceCIDRSpec{CIDRs: tc.old}}
		got := causes(validateNetworkingUpdate(&networkingv1.ServiceCIDR{Spec: networkingv1.ServiceCIDRSpec{CIDRs: tc.cidrs}}, old))
		if got != tc.want {
			t.Errorf("%v -> %v: got %q, want %q", tc.old, tc.cidrs, got, tc.want)
		}
	}
}

func TestValidateIPAddress(t *testing.T) {
	svc := func(ns, name string) *networkingv1.ParentReference {
		return &networkingv1.ParentReference{Resource: "services", Namespace: ns, Name: name}
	}
	for _, tc := range []struct {
		name string
		ref  *networkingv1.ParentReference
		want string
	}{
		{"service", svc("default", "web"), ""},
		{"cluster-scoped parent", &networkingv1.ParentReference{Group: "example.com", Resource: "gateways", Name: "g"}, ""},
		{"no parent", nil, "spec.parentRef: FieldValueRequired"},
		{"no resource or name", &networkingv1.ParentReference{}, "spec.parentRef.name: FieldValueRequired; spec.parentRef.resource: FieldValueRequired"},
		{"bad group", &networkingv1.ParentReference{Group: "Not_DNS", Resource: "services", Name: "x"}, "spec.parentRef.group: FieldValueInvalid"},
		{"path segment", svc("..", "a/b"), "spec.parentRef.name: FieldValueInvalid; spec.parentRef.namespace: FieldValueInvalid"},
	} {
		got := causes(validateNetworking(&networkingv1.IPAddress{Spec: networkingv1.IPAddressSpec{ParentRef: tc.ref}}))
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}

	old := &networkingv1.IPAddress{Spec: networkingv1.IPAddressSpec{ParentRef: svc("default", "web")}}
	moved := &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
		Spec:       networkingv1.IPAddressSpec{ParentRef: svc("default", "other")},
	}
	if got := causes(validateNetworkingUpdate(moved, old)); got != "spec.parentRef: FieldValueInvalid" {
		t.Errorf("parentRef change: %q", got)
	}
	relabelled := old.DeepCopy()
	relabelled.Labels = map[string]string{"a": "b"}
	if got := causes(validateNetworkingUpdate(relabelled, old)); got != "" {
		t.Errorf("label change: %q", got)
	}
}

func TestValidateIPAddressName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"10.96.0.1", true},
		{"2001:db8::1", true},
		{"010.96.0.1", false},     // leading zero
		{"2001:DB8::1", false},    // not canonical
		{"::ffff:1.2.3.4", false}, // IPv4-mapped
		{"web", false},
		{"10.96.0.0/24", false},
	} {
		if msgs := ValidateIPAddressName(tc.name, false); (len(msgs) == 0) != tc.ok {
			t.Errorf("%q: %v", tc.name, msgs)
		}
	}
}

// The resources carry upstream's discovery facts and table columns.
func TestNetworkingAndLegacyResources(t *testing.T) {
	byName := map[string]*Resource{}
	for _, r := range netAndLegacyResources() {
		byName[r.GVR.Resource] = r
	}
	ip := byName["ipaddresses"]
	if ip == nil || ip.Namespaced || strings.Join(ip.ShortNames, ",") != "ip" || ip.Kind != "IPAddress" {
		t.Errorf("ipaddresses: %+v", ip)
	}
	sc := byName["servicecidrs"]
	if sc == nil || sc.Namespaced || !sc.HasSubresource("status") {
		t.Errorf("servicecidrs: %+v", sc)
	}
	cs := byName["componentstatuses"]
	if cs == nil || strings.Join(cs.Verbs, ",") != "get,list" || strings.Join(cs.ShortNames, ",") != "cs" {
		t.Errorf("componentstatuses: %+v", cs)
	}
	if b := byName["bindings"]; b == nil || !b.CreateOnly || !b.Namespaced {
		t.Errorf("bindings: %+v", b)
	}
	row := ip.TableRow(&networkingv1.IPAddress{Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: "default", Name: "web"}}})
	if row[0] != "services/default/web" {
		t.Errorf("ParentRef cell %v", row[0])
	}
	gw := ip.TableRow(&networkingv1.IPAddress{Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Group: "Example.com", Resource: "Gateways", Name: "g"}}})
	if gw[0] != "gateways.example.com/g" {
		t.Errorf("ParentRef cell %v", gw[0])
	}
	if row := sc.TableRow(&networkingv1.ServiceCIDR{Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.0.0.0/24", "fd00::/108"}}}); row[0] != "10.0.0.0/24,fd00::/108" {
		t.Errorf("CIDRs cell %v", row[0])
	}
}
