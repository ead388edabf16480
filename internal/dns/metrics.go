package dns

import (
	"net"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are CoreDNS's request series, which cluster DNS dashboards read:
// Skiff's DNS stands where CoreDNS runs `.:53 { kubernetes; forward }`,
// so every request is in zone "." and the view label is empty.
type metrics struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	cache     *prometheus.CounterVec
	server    string // the server label, "dns://<addr>"
}

func newMetrics(reg prometheus.Registerer, addr string) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coredns_dns_requests_total", Help: "Counter of DNS requests made per zone, protocol and family.",
		}, []string{"server", "zone", "view", "proto", "family", "type"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coredns_dns_responses_total", Help: "Counter of response status codes.",
		}, []string{"server", "zone", "view", "rcode", "plugin"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coredns_dns_request_duration_seconds", Help: "Histogram of the time (in seconds) each request took per zone.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16), // CoreDNS's
		}, []string{"server", "zone", "view", "type"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "skiff_dns_cache_total", Help: "Forwarded-answer cache lookups by result.",
		}, []string{"result"}),
		server: "dns://" + addr,
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.responses, m.duration, m.cache} {
			_ = reg.Register(c)
		}
	}
	return m
}

// observe records one answered request.
func (m *metrics) observe(remote net.Addr, req, resp *dns.Msg, start time.Time) {
	qtype := "other"
	if len(req.Question) > 0 {
		qtype = requestType(req.Question[0].Qtype)
	}
	proto, family := "udp", "1"
	var ip net.IP
	switch a := remote.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		proto, ip = "tcp", a.IP
	}
	if ip != nil && ip.To4() == nil {
		family = "2"
	}
	plugin := "kubernetes"
	if resp.Rcode == dns.RcodeServerFailure {
		plugin = ""
	}
	m.requests.WithLabelValues(m.server, ".", "", proto, family, qtype).Inc()
	m.responses.WithLabelValues(m.server, ".", "", dns.RcodeToString[resp.Rcode], plugin).Inc()
	m.duration.WithLabelValues(m.server, ".", "", qtype).Observe(time.Since(start).Seconds())
}

// requestType is the type label: CoreDNS names the common query types and
// counts the rest as "other", which bounds the label's values.
func requestType(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeDNSKEY, dns.TypeDS, dns.TypeHINFO, dns.TypeIXFR,
		dns.TypeAXFR, dns.TypeMX, dns.TypeNAPTR, dns.TypeNS, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeOPT,
		dns.TypePTR, dns.TypeRRSIG, dns.TypeSOA, dns.TypeSPF, dns.TypeSRV, dns.TypeTXT, dns.TypeHTTPS, dns.TypeSVCB:
		return dns.TypeToString[t]
	}
	return "other"
}
