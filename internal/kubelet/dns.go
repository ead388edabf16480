package kubelet

import (
	"bufio"
	"os"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Upstream's limits on a pod's resolv.conf.
const (
	maxNameservers = 3
	maxSearches    = 32
)

// hostResolvConf is read per call: it is small and a node's resolvers may
// change under a running agent.
var hostResolvConf = "/etc/resolv.conf"

type resolvConf struct {
	servers, searches, options []string
}

func readResolvConf(path string) resolvConf {
	var rc resolvConf
	f, err := os.Open(path)
	if err != nil {
		return rc
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			rc.servers = append(rc.servers, fields[1])
		case "search", "domain":
			rc.searches = fields[1:]
		case "options":
			rc.options = append(rc.options, fields[1:]...)
		}
	}
	return rc
}

// dnsConfig is the pod's resolver configuration for its dnsPolicy, as
// upstream writes it; nil lets the runtime copy the host's file.
func (k *Kubelet) dnsConfig(pod *v1.Pod) (*runtimeapi.DNSConfig, error) {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	if policy == v1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = v1.DNSDefault
	}
	if (policy == v1.DNSClusterFirst || policy == v1.DNSClusterFirstWithHostNet) && len(k.cfg.ClusterDNS) == 0 {
		policy = v1.DNSDefault // no cluster DNS configured: behave as Default
	}
	var rc resolvConf
	switch policy {
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet:
		host := readResolvConf(hostResolvConf)
		d := k.cfg.ClusterDomain
		rc.servers = append([]string{}, k.cfg.ClusterDNS...)
		rc.searches = append([]string{pod.Namespace + ".svc." + d, "svc." + d, d}, host.searches...)
		rc.options = []string{"ndots:5"}
	case v1.DNSDefault:
		rc = readResolvConf(hostResolvConf)
	case v1.DNSNone:
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		rc.servers = append(rc.servers, dc.Nameservers...)
		rc.searches = append(rc.searches, dc.Searches...)
		rc.options = mergeOptions(rc.options, dc.Options)
	}
	if len(rc.servers) > maxNameservers {
		rc.servers = rc.servers[:maxNameservers]
	}
	rc.searches = dedupe(rc.searches)
	if len(rc.searches) > maxSearches {
		rc.searches = rc.searches[:maxSearches]
	}
	return &runtimeapi.DNSConfig{Servers: rc.servers, Searches: rc.searches, Options: rc.options}, nil
}

// mergeOptions overrides options by name with the pod's dnsConfig ones.
func mergeOptions(base []string, extra []v1.PodDNSConfigOption) []string {
	var out []string
	index := map[string]int{}
	add := func(name, opt string) {
		if i, ok := index[name]; ok {
			out[i] = opt
			return
		}
		index[name] = len(out)
		out = append(out, opt)
	}
	for _, o := range base {
		add(strings.SplitN(o, ":", 2)[0], o)
	}
	for _, o := range extra {
		opt := o.Name
		if o.Value != nil {
			opt += ":" + *o.Value
		}
		add(o.Name, opt)
	}
	return out
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
