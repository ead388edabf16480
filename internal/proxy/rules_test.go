package proxy

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func service(name, ip string, mutate ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

type ep struct {
	ip          string
	node        string
	ready       bool
	terminating bool
}

func slice(svc string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(port), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, e := range eps {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{e.ip}, NodeName: ptr.To(e.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready), Serving: ptr.To(e.ready || e.terminating), Terminating: ptr.To(e.terminating)},
		})
	}
	return sl
}

// parsed is a rendered ruleset split by table and chain.
type parsed map[string]map[string][]string

func parse(data string) parsed {
	out := parsed{}
	table := ""
	for _, line := range strings.Split(data, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			out[table] = map[string][]string{}
		case strings.HasPrefix(line, ":"):
			out[table][strings.Fields(line[1:])[0]] = nil
		case strings.HasPrefix(line, "-A "):
			chain := strings.Fields(line)[1]
			out[table][chain] = append(out[table][chain], line)
		}
	}
	return out
}

func rulesFor(t *testing.T, svcs []*v1.Service, slices ...*discoveryv1.EndpointSlice) parsed {
	t.Helper()
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range slices {
		bySvc["ns/"+sl.Labels[discoveryv1.LabelServiceName]] = append(bySvc["ns/"+sl.Labels[discoveryv1.LabelServiceName]], sl)
	}
	rs := buildRules(servicePorts(svcs, bySvc, "node-a"), "10.42.0.0/16")
	return parse(string(rs.render(nil, nil)))
}

func TestClusterIPSpreadsOverReadyEndpoints(t *testing.T) {
	p := rulesFor(t, []*v1.Service{service("web", "10.96.0.50")},
		slice("web", 8080, ep{"10.42.0.5", "node-a", true, false}, ep{"10.42.1.5", "node-b", true, false},
			ep{"10.42.2.5", "node-c", true, false}, ep{"10.42.3.5", "node-c", false, false}))
	svcChain := chainName(serviceChain, "ns/web:http")
	rules := p["nat"][svcChain]
	if len(rules) != 3 {
		t.Fatalf("service chain has %d rules, want one per ready endpoint (3):\n%s", len(rules), strings.Join(rules, "\n"))
	}
	for i, want := range []string{"0.3333333333", "0.5000000000", ""} {
		if want != "" && !strings.Contains(rules[i], "--probability "+want) {
			t.Errorf("rule %d: %s, want probability %s", i, rules[i], want)
		}
		if want == "" && strings.Contains(rules[i], "statistic") {
			t.Errorf("last rule must catch everything left: %s", rules[i])
		}
	}
	var dnat []string
	for _, r := range rules {
		if i := strings.Index(r, "-j DNAT --to-destination "); i >= 0 {
			dnat = append(dnat, r[i+len("-j DNAT --to-destination "):])
		}
	}
	if strings.Join(dnat, ",") != "10.42.0.5:8080,10.42.1.5:8080,10.42.2.5:8080" {
		t.Errorf("DNAT targets %v", dnat)
	}
	var entry bool
	for _, r := range p["nat"][chainServices] {
		if strings.Contains(r, "-d 10.96.0.50 -p tcp --dport 80 -j "+svcChain) {
			entry = true
		}
	}
	if !entry {
		t.Errorf("no ClusterIP entry in %s:\n%s", chainServices, strings.Join(p["nat"][chainServices], "\n"))
	}
}

func TestServiceWithoutEndpointsRejects(t *testing.T) {
	p := rulesFor(t, []*v1.Service{service("empty", "10.96.0.60")}, slice("empty", 8080, ep{"10.42.0.9", "node-a", false, false}))
	found := false
	for _, r := range p["filter"][chainFilterSvc] {
		if strings.Contains(r, "-d 10.96.0.60") && strings.Contains(r, "REJECT") {
			found = true
		}
	}
	if !found {
		t.Errorf("no REJECT for a service without ready endpoints:\n%v", p["filter"])
	}
	for chain := range p["nat"] {
		if strings.HasPrefix(chain, serviceChain) {
			t.Errorf("service chain %s written for a service without endpoints", chain)
		}
	}
}

func TestTerminatingEndpointsServeOnlyWhenNoneReady(t *testing.T) {
	p := rulesFor(t, []*v1.Service{service("web", "10.96.0.50")}, slice("web", 8080, ep{"10.42.0.5", "node-a", false, true}))
	if n := len(p["nat"][chainName(serviceChain, "ns/web:http")]); n != 1 {
		t.Errorf("terminating-but-serving endpoint not used as a fallback: %d rules", n)
	}
	p = rulesFor(t, []*v1.Service{service("web", "10.96.0.50")}, slice("web", 8080, ep{"10.42.0.5", "node-a", false, true}, ep{"10.42.0.6", "node-a", true, false}))
	if n := len(p["nat"][chainName(serviceChain, "ns/web:http")]); n != 1 {
		t.Errorf("terminating endpoint used while a ready one exists: %d rules", n)
	}
}

func TestHeadlessAndExternalNameGetNoRules(t *testing.T) {
	headless := service("headless", v1.ClusterIPNone)
	ext := service("ext", "", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeExternalName; s.Spec.ExternalName = "example.com" })
	p := rulesFor(t, []*v1.Service{headless, ext}, slice("headless", 80, ep{"10.42.0.5", "node-a", true, false}))
	for table, chains := range p {
		for chain, rules := range chains {
			for _, r := range rules {
				if strings.Contains(r, "ns/headless") || strings.Contains(r, "ns/ext") {
					t.Errorf("%s/%s has a rule for a headless or ExternalName service: %s", table, chain, r)
				}
			}
		}
	}
}

func TestNodePortAndExternalTrafficPolicyLocal(t *testing.T) {
	svc := service("np", "10.96.0.70", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	})
	p := rulesFor(t, []*v1.Service{svc}, slice("np", 8080, ep{"10.42.0.5", "node-a", true, false}, ep{"10.42.1.5", "node-b", true, false}))
	ext := chainName(externalChain, "ns/np:http")
	if rules := p["nat"][chainNodePorts]; len(rules) != 1 || !strings.Contains(rules[0], "--dport 30080 -j "+ext) {
		t.Fatalf("node port rules: %v", rules)
	}
	local := chainName(localOnlyChain, "ns/np:http")
	if rules := p["nat"][local]; len(rules) != 1 {
		t.Errorf("Local policy: %d endpoints for external traffic, want only the local one", len(rules))
	}
	for _, r := range p["nat"][ext] {
		if strings.Contains(r, chainMarkMasq) {
			t.Errorf("Local policy must keep the client address, but masquerades: %s", r)
		}
	}
	// No local endpoint: external traffic is dropped rather than forwarded.
	p = rulesFor(t, []*v1.Service{svc}, slice("np", 8080, ep{"10.42.1.5", "node-b", true, false}))
	dropped := false
	for _, r := range p["filter"][chainFilterExt] {
		if strings.Contains(r, "--dport 30080") && strings.Contains(r, "DROP") {
			dropped = true
		}
	}
	if !dropped {
		t.Errorf("Local policy without local endpoints does not drop: %v", p["filter"][chainFilterExt])
	}
}

func TestSessionAffinityUsesRecent(t *testing.T) {
	svc := service("sticky", "10.96.0.80", func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(600))}}
	})
	p := rulesFor(t, []*v1.Service{svc}, slice("sticky", 80, ep{"10.42.0.5", "node-a", true, false}, ep{"10.42.0.6", "node-a", true, false}))
	rules := p["nat"][chainName(serviceChain, "ns/sticky:http")]
	if len(rules) != 4 || !strings.Contains(rules[0], "--rcheck --seconds 600") {
		t.Errorf("affinity rules:\n%s", strings.Join(rules, "\n"))
	}
}

func TestHairpinMasqueradesAnEndpointReachingItself(t *testing.T) {
	p := rulesFor(t, []*v1.Service{service("web", "10.96.0.50")}, slice("web", 8080, ep{"10.42.0.5", "node-a", true, false}))
	post := p["nat"][chainPost]
	var hairpin, markCheck = -1, -1
	for i, r := range post {
		if strings.Contains(r, "-s 10.42.0.5 -d 10.42.0.5") && strings.Contains(r, "MASQUERADE") {
			hairpin = i
		}
		if strings.Contains(r, "-j RETURN") {
			markCheck = i
		}
	}
	if hairpin < 0 || hairpin > markCheck {
		t.Errorf("no hairpin masquerade before the mark check:\n%s", strings.Join(post, "\n"))
	}
}

func TestChainNamesFitIptables(t *testing.T) {
	name := chainName(affinityList, strings.Repeat("very-long-namespace/", 10))
	if len(name) > 28 || !strings.HasPrefix(name, affinityList) {
		t.Errorf("chain name %q", name)
	}
	if chainName(serviceChain, "a") == chainName(serviceChain, "b") {
		t.Error("distinct keys share a chain name")
	}
}

func TestSplitRuleKeepsQuotedComments(t *testing.T) {
	got := splitRule(`-m comment --comment "skiff service portals" -j SKIFF-SERVICES`)
	want := []string{"-m", "comment", "--comment", "skiff service portals", "-j", "SKIFF-SERVICES"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitRule = %q", got)
	}
}
