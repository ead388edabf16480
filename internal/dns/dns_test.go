package dns

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// startUpstream runs a resolver for example.test that answers one name.
func startUpstream(t *testing.T) (addr string, stop func()) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "www.example.test." {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.80")}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	return pc.LocalAddr().String(), func() { _ = srv.Shutdown() }
}

func fixtures() []any {
	return []any{
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: v1.ServiceSpec{
			ClusterIP: "10.96.0.50", ClusterIPs: []string{"10.96.0.50"},
			Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: v1.ServiceSpec{
			ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Name: "sql", Port: 5432, Protocol: v1.ProtocolTCP}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "shop"}, Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeExternalName, ExternalName: "www.example.test"}},
		&discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("sql"), Port: ptr.To(int32(5432)), Protocol: ptr.To(v1.ProtocolTCP)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.42.0.7"}, Hostname: ptr.To("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
				{Addresses: []string{"10.42.1.7"}, Hostname: ptr.To("db-1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
				{Addresses: []string{"10.42.2.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
			},
		},
	}
}

func startTestServer(t *testing.T, upstream string) (*Server, *fake.Clientset, func(string, uint16) *dns.Msg) {
	t.Helper()
	client := fake.NewSimpleClientset()
	for _, o := range fixtures() {
		switch o := o.(type) {
		case *v1.Service:
			_, _ = client.CoreV1().Services(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		case *discoveryv1.EndpointSlice:
			_, _ = client.DiscoveryV1().EndpointSlices(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, Config{Client: client, Addr: "127.0.0.1:0", Upstreams: []string{upstream}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	c := &dns.Client{Timeout: 2 * time.Second}
	query := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		resp, _, err := c.Exchange(m, srv.Addr().String())
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		return resp
	}
	return srv, client, query
}

func addrs(m *dns.Msg) map[string]bool {
	out := map[string]bool{}
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out[rr.A.String()] = true
		case *dns.CNAME:
			out[rr.Target] = true
		case *dns.PTR:
			out[rr.Ptr] = true
		case *dns.SRV:
			out[rr.Target] = true
		}
	}
	return out
}

func TestClusterRecords(t *testing.T) {
	up, stop := startUpstream(t)
	defer stop()
	_, _, q := startTestServer(t, up)

	if got := addrs(q("web.shop.svc.cluster.local.", dns.TypeA)); len(got) != 1 || !got["10.96.0.50"] {
		t.Errorf("service A = %v", got)
	}
	if got := addrs(q("db.shop.svc.cluster.local.", dns.TypeA)); len(got) != 2 || !got["10.42.0.7"] || !got["10.42.1.7"] {
		t.Errorf("headless A = %v, want the two ready endpoints", got)
	}
	if got := addrs(q("db-1.db.shop.svc.cluster.local.", dns.TypeA)); len(got) != 1 || !got["10.42.1.7"] {
		t.Errorf("stateful pod A = %v", got)
	}
	if got := addrs(q("_http._tcp.web.shop.svc.cluster.local.", dns.TypeSRV)); !got["web.shop.svc.cluster.local."] {
		t.Errorf("SRV = %v", got)
	}
	if got := addrs(q("_sql._tcp.db.shop.svc.cluster.local.", dns.TypeSRV)); !got["db-0.db.shop.svc.cluster.local."] || !got["db-1.db.shop.svc.cluster.local."] {
		t.Errorf("headless SRV = %v", got)
	}
	if got := addrs(q("50.0.96.10.in-addr.arpa.", dns.TypePTR)); !got["web.shop.svc.cluster.local."] {
		t.Errorf("PTR = %v", got)
	}
	if got := addrs(q("ext.shop.svc.cluster.local.", dns.TypeA)); !got["www.example.test."] {
		t.Errorf("ExternalName = %v", got)
	}
	if got := addrs(q("10-42-3-9.shop.pod.cluster.local.", dns.TypeA)); !got["10.42.3.9"] {
		t.Errorf("pod A = %v", got)
	}

	nx := q("nosuch.shop.svc.cluster.local.", dns.TypeA)
	if nx.Rcode != dns.RcodeNameError || len(nx.Ns) != 1 || nx.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("missing name: rcode %s, authority %v", dns.RcodeToString[nx.Rcode], nx.Ns)
	}
	nodata := q("web.shop.svc.cluster.local.", dns.TypeAAAA)
	if nodata.Rcode != dns.RcodeSuccess || len(nodata.Answer) != 0 || len(nodata.Ns) != 1 {
		t.Errorf("AAAA of an IPv4 service: rcode %s answers %v", dns.RcodeToString[nodata.Rcode], nodata.Answer)
	}
}

func TestUpdatesAreSeen(t *testing.T) {
	up, stop := startUpstream(t)
	defer stop()
	_, client, q := startTestServer(t, up)
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "shop"}, Spec: v1.ServiceSpec{ClusterIP: "10.96.0.77"}}
	if _, err := client.CoreV1().Services("shop").Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !addrs(q("late.shop.svc.cluster.local.", dns.TypeA))["10.96.0.77"] {
		if time.Now().After(deadline) {
			t.Fatal("a new service never resolved")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestForwardsAndCaches(t *testing.T) {
	up, stop := startUpstream(t)
	_, _, q := startTestServer(t, up)
	if got := addrs(q("www.example.test.", dns.TypeA)); !got["192.0.2.80"] {
		t.Fatalf("forwarded answer = %v", got)
	}
	stop() // the cache answers without the upstream
	time.Sleep(50 * time.Millisecond)
	resp := q("www.example.test.", dns.TypeA)
	if got := addrs(resp); !got["192.0.2.80"] {
		t.Fatalf("cached answer = %v", got)
	}
	if ttl := resp.Answer[0].Header().Ttl; ttl == 0 || ttl > 60 {
		t.Errorf("cached TTL %d, want counting down from 60", ttl)
	}
	if resp := q("other.example.test.", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("unreachable upstream: rcode %s, want SERVFAIL", dns.RcodeToString[resp.Rcode])
	}
}

// A port in use is an error returned at once, not a hang: the agent logs
// it and goes on without cluster DNS.
func TestStartPortInUse(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Start(ctx, Config{Client: fake.NewSimpleClientset(), Addr: taken.LocalAddr().String(), Upstreams: []string{"127.0.0.1:1"}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Start on a port in use succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start on a port in use did not return")
	}
}

func BenchmarkServeA(b *testing.B) {
	client := fake.NewSimpleClientset(&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: v1.ServiceSpec{ClusterIP: "10.96.0.50", ClusterIPs: []string{"10.96.0.50"}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := Start(ctx, Config{Client: client, Addr: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:1"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := dns.Dial("udp", srv.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		m := new(dns.Msg)
		m.SetQuestion("web.shop.svc.cluster.local.", dns.TypeA)
		for pb.Next() {
			if err := conn.WriteMsg(m); err != nil {
				b.Error(err)
				return
			}
			if _, err := conn.ReadMsg(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

// A fixed port taken over TCP is an error, not a silent move elsewhere;
// an ephemeral one gives UDP and TCP the same port.
func TestListenUDPAndTCP(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if pc, ln, err := listenUDPAndTCP(taken.Addr().String()); err == nil {
		pc.Close()
		ln.Close()
		t.Fatalf("listened on %s, whose TCP port is taken", taken.Addr())
	}
	pc, ln, err := listenUDPAndTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	defer ln.Close()
	if u, tc := pc.LocalAddr().(*net.UDPAddr).Port, ln.Addr().(*net.TCPAddr).Port; u != tc {
		t.Errorf("UDP port %d, TCP port %d", u, tc)
	}
}
