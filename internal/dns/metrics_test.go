package dns

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRequestsCountedWithCoreDNSLabels(t *testing.T) {
	up, stop := startUpstream(t)
	defer stop()
	reg := prometheus.NewRegistry()
	client := fake.NewSimpleClientset()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, Config{Client: client, Addr: "127.0.0.1:0", Upstreams: []string{up}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	for _, net := range []string{"udp", "tcp", "udp"} {
		c := &dns.Client{Net: net, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("nosuch.default.svc.cluster.local.", dns.TypeA)
		if _, _, err := c.Exchange(m, srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"udp": 2, "tcp": 1}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "coredns_dns_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labelMap(m)
			if l["server"] != "dns://127.0.0.1:0" || l["zone"] != "." || l["family"] != "1" || l["type"] != "A" {
				t.Errorf("labels %v", l)
			}
			got[l["proto"]] = m.GetCounter().GetValue()
		}
	}
	if got["udp"] != want["udp"] || got["tcp"] != want["tcp"] {
		t.Errorf("requests by proto = %v, want %v", got, want)
	}
	if requestType(dns.TypeA) != "A" || requestType(dns.TypeNULL) != "other" {
		t.Error("request types: want A named and NULL as other")
	}
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
