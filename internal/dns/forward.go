package dns

import (
	"bufio"
	"container/list"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// forwarder sends queries outside the cluster to the node's resolvers and
// caches the answers for their TTL (bounded in size, least recently used
// out first).
type forwarder struct {
	upstreams []string
	udp, tcp  *dns.Client

	mu    sync.Mutex
	max   int
	lru   *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	key     string
	msg     *dns.Msg
	expires time.Time
}

func newForwarder(upstreams []string, max int) *forwarder {
	return &forwarder{
		upstreams: upstreams,
		udp:       &dns.Client{Net: "udp", Timeout: 2 * time.Second},
		tcp:       &dns.Client{Net: "tcp", Timeout: 2 * time.Second},
		max:       max, lru: list.New(), items: map[string]*list.Element{},
	}
}

func cacheKey(req *dns.Msg) string {
	q := req.Question[0]
	return fmt.Sprintf("%s/%d/%d/%t", strings.ToLower(q.Name), q.Qtype, q.Qclass, req.CheckingDisabled)
}

// cached answers from the cache, with the request's ID and TTLs counted
// down.
func (f *forwarder) cached(req *dns.Msg) (*dns.Msg, bool) {
	key := cacheKey(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	el, ok := f.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	left := time.Until(e.expires)
	if left <= 0 {
		f.lru.Remove(el)
		delete(f.items, key)
		return nil, false
	}
	f.lru.MoveToFront(el)
	m := e.msg.Copy()
	m.Id = req.Id
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype != dns.TypeOPT {
				rr.Header().Ttl = uint32(left.Seconds() + 0.5)
			}
		}
	}
	return m, true
}

// forward asks each upstream in turn, over TCP when the UDP answer is
// truncated, and caches good answers.
func (f *forwarder) forward(req *dns.Msg, tcp bool) (*dns.Msg, error) {
	if len(f.upstreams) == 0 {
		return nil, fmt.Errorf("no upstream resolvers")
	}
	var lastErr error
	for _, up := range f.upstreams {
		client := f.udp
		if tcp {
			client = f.tcp
		}
		m, _, err := client.Exchange(req, up)
		if err == nil && m.Truncated && !tcp {
			m, _, err = f.tcp.Exchange(req, up)
		}
		if err != nil {
			lastErr = err
			continue
		}
		f.store(req, m)
		return m, nil
	}
	return nil, lastErr
}

func (f *forwarder) store(req *dns.Msg, m *dns.Msg) {
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return
	}
	ttl := uint32(300)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			if rr.Header().Ttl < ttl {
				ttl = rr.Header().Ttl
			}
		}
	}
	if ttl == 0 {
		return
	}
	key := cacheKey(req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.items[key]; ok {
		f.lru.Remove(el)
	}
	f.items[key] = f.lru.PushFront(&cacheEntry{key: key, msg: m.Copy(), expires: time.Now().Add(time.Duration(ttl) * time.Second)})
	for f.lru.Len() > f.max {
		old := f.lru.Back()
		f.lru.Remove(old)
		delete(f.items, old.Value.(*cacheEntry).key)
	}
}

// hostResolvers reads the nameservers of a resolv.conf, as host:53.
func hostResolvers(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if ip := net.ParseIP(fields[1]); ip != nil && !ip.IsLoopback() {
				out = append(out, net.JoinHostPort(fields[1], "53"))
			}
		}
	}
	return out
}
