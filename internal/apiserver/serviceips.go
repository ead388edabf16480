package apiserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiff-dev/skiff/internal/storage"
)

// IPAllocatorName is the value of the managed-by label on the IPAddress
// objects of Service cluster IPs, as upstream's allocator writes it.
const IPAllocatorName = "ipallocator.k8s.io"

var (
	serviceCIDRsGVR = networkingv1.SchemeGroupVersion.WithResource("servicecidrs")
	ipAddressesGVR  = networkingv1.SchemeGroupVersion.WithResource("ipaddresses")

	// errMismatchedNetwork: no ready ServiceCIDR holds the address.
	errMismatchedNetwork = errors.New("the provided network does not match the current range")
)

// serviceRange is the allocatable part of one ServiceCIDR range: all but
// the network address (and, for IPv4, the broadcast address). Dynamic
// allocation prefers the upper part, from first+offset on, and leaves the
// lower part to addresses users choose (KEP-3070).
type serviceRange struct {
	prefix      netip.Prefix
	first, last netip.Addr
	offset      uint64
	size        uint64
}

// newServiceRange describes prefix, or says it has no usable address.
func newServiceRange(prefix netip.Prefix) (serviceRange, bool) {
	prefix = prefix.Masked()
	hostBits := prefix.Addr().BitLen() - prefix.Bits()
	if prefix.Addr().Is6() && prefix.Bits() < 64 {
		return serviceRange{}, false // upstream refuses IPv6 ranges wider than /64
	}
	r := serviceRange{prefix: prefix, first: prefix.Addr().Next(), last: lastAddr(prefix)}
	cidrSize := uint64(1) << min(hostBits, 63)
	if hostBits >= 64 {
		cidrSize = ^uint64(0)
	}
	r.size = cidrSize - 1
	if prefix.Addr().Is4() {
		r.last = r.last.Prev()
		r.size--
	}
	if hostBits == 0 || r.size == 0 || r.size > cidrSize {
		return serviceRange{}, false
	}
	if cidrSize > 16 {
		r.offset = min(max(cidrSize/16, 16), 256)
	}
	return r, true
}

// lastAddr is the address with every host bit of prefix set.
func lastAddr(prefix netip.Prefix) netip.Addr {
	b := prefix.Addr().As16()
	from := prefix.Bits()
	if prefix.Addr().Is4() {
		from += 96
	}
	for i := from; i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a := netip.AddrFrom16(b)
	if prefix.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// addOffset returns a+n (n small enough to stay in a's family).
func addOffset(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	lo, carry := bits.Add64(binary.BigEndian.Uint64(b[8:]), n, 0)
	binary.BigEndian.PutUint64(b[8:], lo)
	binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(b[:8])+carry)
	out := netip.AddrFrom16(b)
	if a.Is4() {
		out = out.Unmap()
	}
	return out
}

// contains reports whether ip is an allocatable address of r.
func (r serviceRange) contains(ip netip.Addr) bool {
	return r.first.Compare(ip) <= 0 && ip.Compare(r.last) <= 0
}

// candidates yields r's addresses in upstream's order: the upper part from
// a random address, wrapping around, then the lower part likewise.
func (r serviceRange) candidates() iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		upperFirst := addOffset(r.first, r.offset)
		if !walk(upperFirst, r.last, addOffset(upperFirst, rand.Uint64N(r.size-r.offset)), yield) {
			return
		}
		if r.offset > 0 {
			walk(r.first, upperFirst.Prev(), addOffset(r.first, rand.Uint64N(r.offset)), yield)
		}
	}
}

// walk yields first..last starting at start and wrapping around; false
// means the consumer stopped.
func walk(first, last, start netip.Addr, yield func(netip.Addr) bool) bool {
	for a := start; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		if !yield(a) {
			return false
		}
	}
	for a := first; a.Compare(start) < 0; a = a.Next() {
		if !yield(a) {
			return false
		}
	}
	return true
}

// serviceFamily is the IP family a new service's address comes from.
func serviceFamily(svc *corev1.Service, fallback *net.IPNet) corev1.IPFamily {
	if len(svc.Spec.IPFamilies) > 0 {
		return svc.Spec.IPFamilies[0]
	}
	if fallback != nil && fallback.IP.To4() == nil {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

func familyOf(a netip.Addr) corev1.IPFamily {
	if a.Is4() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

// serviceCIDRReady says whether new addresses may come from sc: it is not
// being deleted and its Ready condition is not False (no condition counts
// as ready, as upstream's allocator assumes when no controller runs).
func serviceCIDRReady(sc *networkingv1.ServiceCIDR) bool {
	if sc.DeletionTimestamp != nil {
		return false
	}
	c := meta.FindStatusCondition(sc.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
	return c == nil || c.Status == metav1.ConditionTrue
}

// readyServiceRanges are the distinct ranges of the ready ServiceCIDRs, in
// random order, as the watch cache holds them.
func (q *Server) readyServiceRanges() []serviceRange {
	res := q.resources[serviceCIDRsGVR]
	if res == nil {
		return nil
	}
	entries, _ := res.cache.List(res.prefix, nil)
	var out []serviceRange
	for _, e := range entries {
		sc := e.Obj.(*networkingv1.ServiceCIDR)
		if !serviceCIDRReady(sc) {
			continue
		}
		for _, c := range sc.Spec.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				continue
			}
			r, ok := newServiceRange(p)
			if ok && !slices.ContainsFunc(out, func(o serviceRange) bool { return o.prefix == r.prefix }) {
				out = append(out, r)
			}
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// checkStaticServiceIP says why ip, chosen by the user, cannot be a
// service's address, as upstream's allocator words it; nil means it may
// (whether it is free is for the transaction to find out). As upstream,
// a range's network and IPv4 broadcast addresses are outside it.
func (q *Server) checkStaticServiceIP(ctx context.Context, ip string) error {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("failed to parse service IP %q", ip)
	}
	inRange := func() bool {
		return slices.ContainsFunc(q.readyServiceRanges(), func(r serviceRange) bool { return r.contains(addr) })
	}
	if inRange() {
		return nil
	}
	// A ServiceCIDR created a moment ago may not be in the cache yet.
	if res := q.resources[serviceCIDRsGVR]; res != nil {
		if err := res.cache.WaitFresh(ctx); err != nil {
			return err
		}
	}
	if inRange() {
		return nil
	}
	return errMismatchedNetwork
}

// freeServiceIPs returns an iterator over addresses of family that the
// ready ServiceCIDRs offer and no IPAddress object holds yet (as far as the
// watch cache knows), and a function that releases it. When those run out
// it looks once more at ranges a fresh cache shows (a ServiceCIDR created
// a moment ago).
func (q *Server) freeServiceIPs(ctx context.Context, family corev1.IPFamily) (func() (netip.Addr, bool), func()) {
	ipRes, cidrRes := q.resources[ipAddressesGVR], q.resources[serviceCIDRsGVR]
	seq := func(yield func(netip.Addr) bool) {
		tried := map[netip.Prefix]bool{}
		for round := 0; round < 2; round++ {
			if round > 0 && (cidrRes == nil || cidrRes.cache.WaitFresh(ctx) != nil) {
				return
			}
			for _, r := range q.readyServiceRanges() {
				if tried[r.prefix] || familyOf(r.first) != family {
					continue
				}
				tried[r.prefix] = true
				for a := range r.candidates() {
					if ctx.Err() != nil {
						return
					}
					if ipRes != nil {
						if _, held := ipRes.cache.Get(ipAddressKey(a.String())); held {
							continue
						}
					}
					if !yield(a) {
						return
					}
				}
			}
		}
	}
	return iter.Pull(seq)
}

// ipAddressKV is the stored IPAddress object that reserves ip for the
// service ns/name.
func (q *Server) ipAddressKV(ip, ns, name string) (storage.KV, error) {
	res := q.resources[ipAddressesGVR]
	if res == nil {
		return storage.KV{}, apierrors.NewInternalError(errors.New("the ipaddresses resource is not served"))
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return storage.KV{}, fmt.Errorf("service IP %q: %w", ip, err)
	}
	obj := &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{
			Name: addr.String(), UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{
				networkingv1.LabelIPAddressFamily: string(familyOf(addr)),
				networkingv1.LabelManagedBy:       IPAllocatorName,
			},
		},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{
			Resource: "services", Namespace: ns, Name: name,
		}},
	}
	data, err := res.encode(obj)
	if err != nil {
		return storage.KV{}, err
	}
	return storage.KV{Key: ipAddressKey(obj.Name), Value: data}, nil
}
