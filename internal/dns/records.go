package dns

import (
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
)

// records answers names in the cluster domain from an index of Services
// and EndpointSlices, rebuilt lazily after changes.
type records struct {
	domain   string // "cluster.local."
	ttl      uint32
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister

	dirty atomic.Bool
	mu    sync.RWMutex
	idx   *index
}

// index maps lowercase FQDNs to their records.
type index struct {
	a     map[string][]dns.RR // A and CNAME answers
	srv   map[string][]dns.RR
	ptr   map[string][]dns.RR
	names map[string]bool // every name that exists (for NODATA vs NXDOMAIN)
}

func newRecords(domain string, ttl uint32) *records {
	r := &records{domain: domain, ttl: ttl}
	r.dirty.Store(true)
	return r
}

func (r *records) markDirty() { r.dirty.Store(true) }

// authoritative says whether name is ours to answer: the cluster domain,
// and reverse names of cluster addresses.
func (r *records) authoritative(name string) bool {
	if name == r.domain || strings.HasSuffix(name, "."+r.domain) {
		return true
	}
	if strings.HasSuffix(name, ".in-addr.arpa.") {
		_, ok := r.current().ptr[name]
		return ok
	}
	return false
}

func (r *records) current() *index {
	if r.dirty.Load() {
		r.mu.Lock()
		if r.dirty.Swap(false) {
			r.idx = r.build()
		}
		r.mu.Unlock()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.idx
}

func (r *records) hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: r.ttl}
}

// build indexes every Service: ClusterIP A records, headless endpoint A
// records (and hostnames), ExternalName CNAMEs, SRV per named port, PTRs.
func (r *records) build() *index {
	idx := &index{a: map[string][]dns.RR{}, srv: map[string][]dns.RR{}, ptr: map[string][]dns.RR{}, names: map[string]bool{}}
	if r.services == nil {
		return idx
	}
	svcs, _ := r.services.List(labels.Everything())
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Namespace+"/"+svcs[i].Name < svcs[j].Namespace+"/"+svcs[j].Name })
	allSlices, _ := r.slices.List(labels.Everything())
	slices := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range allSlices {
		if n := sl.Labels[discoveryv1.LabelServiceName]; n != "" {
			slices[sl.Namespace+"/"+n] = append(slices[sl.Namespace+"/"+n], sl)
		}
	}
	for _, svc := range svcs {
		ns := strings.ToLower(svc.Namespace)
		name := strings.ToLower(svc.Name) + "." + ns + ".svc." + r.domain
		idx.names[name] = true
		idx.names[ns+".svc."+r.domain] = true
		switch {
		case svc.Spec.Type == v1.ServiceTypeExternalName:
			idx.a[name] = append(idx.a[name], &dns.CNAME{Hdr: r.hdr(name, dns.TypeCNAME), Target: dns.Fqdn(svc.Spec.ExternalName)})
		case svc.Spec.ClusterIP == v1.ClusterIPNone:
			r.indexHeadless(idx, svc, name, slices[svc.Namespace+"/"+svc.Name])
		default:
			for _, ip := range clusterIPs(svc) {
				idx.a[name] = append(idx.a[name], &dns.A{Hdr: r.hdr(name, dns.TypeA), A: ip})
				rev, _ := dns.ReverseAddr(ip.String())
				idx.ptr[rev] = append(idx.ptr[rev], &dns.PTR{Hdr: r.hdr(rev, dns.TypePTR), Ptr: name})
			}
			for _, p := range svc.Spec.Ports {
				if p.Name == "" {
					continue
				}
				srvName := "_" + strings.ToLower(p.Name) + "._" + strings.ToLower(string(p.Protocol)) + "." + name
				idx.names[srvName] = true
				idx.srv[srvName] = append(idx.srv[srvName], &dns.SRV{Hdr: r.hdr(srvName, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: name})
			}
		}
	}
	return idx
}

// indexHeadless answers a headless service with every ready endpoint, and
// each endpoint with a hostname by <hostname>.<service>.
func (r *records) indexHeadless(idx *index, svc *v1.Service, name string, slices []*discoveryv1.EndpointSlice) {
	seen := map[string]bool{}
	for _, sl := range slices {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, e := range sl.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if !ready && !svc.Spec.PublishNotReadyAddresses {
				continue
			}
			for _, addr := range e.Addresses {
				ip := net.ParseIP(addr)
				if ip == nil || seen[addr] {
					continue
				}
				seen[addr] = true
				idx.a[name] = append(idx.a[name], &dns.A{Hdr: r.hdr(name, dns.TypeA), A: ip})
				host := strings.ReplaceAll(addr, ".", "-")
				if e.Hostname != nil && *e.Hostname != "" {
					host = strings.ToLower(*e.Hostname)
				}
				hostName := host + "." + name
				idx.names[hostName] = true
				idx.a[hostName] = append(idx.a[hostName], &dns.A{Hdr: r.hdr(hostName, dns.TypeA), A: ip})
				rev, _ := dns.ReverseAddr(addr)
				idx.ptr[rev] = append(idx.ptr[rev], &dns.PTR{Hdr: r.hdr(rev, dns.TypePTR), Ptr: hostName})
				for _, p := range sl.Ports {
					if p.Name == nil || *p.Name == "" || p.Port == nil {
						continue
					}
					proto := "tcp"
					if p.Protocol != nil {
						proto = strings.ToLower(string(*p.Protocol))
					}
					srvName := "_" + strings.ToLower(*p.Name) + "._" + proto + "." + name
					idx.names[srvName] = true
					idx.srv[srvName] = append(idx.srv[srvName], &dns.SRV{Hdr: r.hdr(srvName, dns.TypeSRV), Weight: 100, Port: uint16(*p.Port), Target: hostName})
				}
			}
		}
	}
}

func clusterIPs(svc *v1.Service) []net.IP {
	raw := svc.Spec.ClusterIPs
	if len(raw) == 0 && svc.Spec.ClusterIP != "" {
		raw = []string{svc.Spec.ClusterIP}
	}
	var out []net.IP
	for _, s := range raw {
		if ip := net.ParseIP(s); ip != nil {
			out = append(out, ip)
		}
	}
	return out
}

// answer builds the response for a name in our zone.
func (r *records) answer(req *dns.Msg, name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	idx := r.current()
	var rrs []dns.RR
	exists := idx.names[name]
	switch qtype {
	case dns.TypeA:
		for _, rr := range idx.a[name] {
			if rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeCNAME {
				rrs = append(rrs, rr)
			}
		}
		if ip, ok := r.podIP(name); ok {
			exists = true
			rrs = append(rrs, &dns.A{Hdr: r.hdr(name, dns.TypeA), A: ip})
		}
	case dns.TypeAAAA:
		for _, rr := range idx.a[name] {
			if rr.Header().Rrtype == dns.TypeCNAME {
				rrs = append(rrs, rr)
			}
		}
		if _, ok := r.podIP(name); ok {
			exists = true
		}
	case dns.TypeSRV:
		rrs = idx.srv[name]
	case dns.TypePTR:
		rrs = idx.ptr[name]
		exists = exists || len(rrs) > 0
	case dns.TypeCNAME:
		for _, rr := range idx.a[name] {
			if rr.Header().Rrtype == dns.TypeCNAME {
				rrs = append(rrs, rr)
			}
		}
	}
	if len(rrs) == 0 && (len(idx.a[name]) > 0 || len(idx.srv[name]) > 0) {
		exists = true
	}
	if name == r.domain || name == "svc."+r.domain || name == "pod."+r.domain {
		exists = true
	}
	m.Answer = rrs
	if len(rrs) == 0 {
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = []dns.RR{r.soa()}
	}
	return m
}

// podIP answers <a-b-c-d>.<namespace>.pod.<domain>.
func (r *records) podIP(name string) (net.IP, bool) {
	rest, ok := strings.CutSuffix(name, ".pod."+r.domain)
	if !ok {
		return nil, false
	}
	dashed, _, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, false
	}
	ip := net.ParseIP(strings.ReplaceAll(dashed, "-", "."))
	if ip == nil || ip.To4() == nil {
		return nil, false
	}
	return ip.To4(), true
}

func (r *records) soa() dns.RR {
	return &dns.SOA{
		Hdr: r.hdr(r.domain, dns.TypeSOA), Ns: "ns.dns." + r.domain, Mbox: "hostmaster." + r.domain,
		Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: r.ttl,
	}
}
