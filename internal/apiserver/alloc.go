package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/storage"
)

// A Service's addresses are reserved by keys created in the same etcd
// transaction as the Service and deleted with it, so two Services can never
// share one: each cluster IP is an IPAddress object (its key is the
// reservation, and `kubectl get ipaddresses` shows it), each node port a key
// under nodePortPrefix.
const (
	ipAddressPrefix = "/registry/ipaddresses.networking.k8s.io/"
	nodePortPrefix  = "/registry/ranges/servicenodeports/"
)

// maxAllocAttempts bounds the transactions one create tries when the
// addresses it picked were taken meanwhile by writers the caches had not
// shown yet.
const maxAllocAttempts = 64

// PortRange is an inclusive range of node ports.
type PortRange struct{ Base, Size int }

// DefaultNodePortRange is upstream's 30000-32767.
var DefaultNodePortRange = PortRange{Base: 30000, Size: 2768}

// FirstServiceIP returns the first usable address of cidr, which the
// `kubernetes` service takes.
func FirstServiceIP(cidr *net.IPNet) net.IP {
	return addIP(cidr.IP, 1)
}

func addIP(ip net.IP, n int64) net.IP {
	v4 := ip.To4()
	b := new(big.Int).SetBytes(v4)
	b.Add(b, big.NewInt(n))
	out := make(net.IP, 4)
	b.FillBytes(out)
	return out
}

// ClusterDNSServiceIP is the tenth address of the service range, where
// upstream puts the cluster DNS Service (10.96.0.10 for 10.96.0.0/12).
func ClusterDNSServiceIP(cidr *net.IPNet) net.IP {
	return addIP(cidr.IP, 10)
}

// serviceIPs are the cluster IPs a service holds.
func serviceIPs(svc *corev1.Service) []string {
	if len(svc.Spec.ClusterIPs) > 0 {
		if svc.Spec.ClusterIPs[0] == corev1.ClusterIPNone {
			return nil
		}
		return svc.Spec.ClusterIPs
	}
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		return []string{ip}
	}
	return nil
}

// reservations returns the keys a service holds.
func reservations(svc *corev1.Service) []string {
	var keys []string
	for _, ip := range serviceIPs(svc) {
		keys = append(keys, ipAddressKey(ip))
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			keys = append(keys, nodePortKey(p))
		}
	}
	return keys
}

// heldKeys are the reservation keys to delete together with obj.
func heldKeys(obj runtime.Object) []string {
	if svc, ok := obj.(*corev1.Service); ok {
		return reservations(svc)
	}
	return nil
}

// ipAddressKey is the key of the IPAddress object reserving ip, whose name
// is the canonical form of the address.
func ipAddressKey(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.String()
	}
	return ipAddressPrefix + ip
}

func nodePortKey(p corev1.ServicePort) string {
	return nodePortPrefix + strconv.Itoa(int(p.NodePort)) + "-" + string(p.Protocol)
}

// createService stores a new service with its cluster IP and node ports,
// picking free ones where the user left them unset and moving on when a
// picked address turns out to be taken.
func (q *Server) createService(ctx context.Context, svc *corev1.Service) error {
	res := q.resources[corev1.SchemeGroupVersion.WithResource("services")]
	invalid := func(errs ...*field.Error) error {
		return apierrors.NewInvalid(res.gvk.GroupKind(), svc.Name, errs)
	}
	// clusterIP and clusterIPs[0] say the same, as upstream normalises them.
	if svc.Spec.ClusterIP == "" && len(svc.Spec.ClusterIPs) > 0 {
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	if svc.Spec.ClusterIP != "" && len(svc.Spec.ClusterIPs) == 0 {
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	needsIP := svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
	wantIP := needsIP && svc.Spec.ClusterIP == ""
	var next func() (netip.Addr, bool)
	switch {
	case wantIP:
		var stop func()
		next, stop = q.freeServiceIPs(ctx, serviceFamily(svc, q.serviceCIDR))
		defer stop()
	case needsIP:
		for _, ip := range serviceIPs(svc) {
			if err := q.checkStaticServiceIP(ctx, ip); err != nil {
				return invalid(field.Invalid(field.NewPath("spec", "clusterIPs"), svc.Spec.ClusterIPs,
					fmt.Sprintf("failed to allocate IP %s: %v", ip, err)))
			}
		}
	}
	wantPorts := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	userPorts := map[int]bool{}
	for i, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			if p.NodePort < int32(q.nodePorts.Base) || int(p.NodePort) >= q.nodePorts.Base+q.nodePorts.Size {
				return invalid(field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", q.nodePorts.Base, q.nodePorts.Base+q.nodePorts.Size-1)))
			}
			userPorts[i] = true
		}
	}
	pickIP := wantIP
	for attempt := 0; attempt < maxAllocAttempts; attempt++ {
		if pickIP {
			ip, ok := next()
			if !ok {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP for Service %q: range is full", svc.Name))
			}
			svc.Spec.ClusterIP = ip.String()
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
		if wantPorts {
			for i := range svc.Spec.Ports {
				if !userPorts[i] {
					svc.Spec.Ports[i].NodePort = int32(q.nodePorts.Base + rand.IntN(q.nodePorts.Size))
				}
			}
		}
		kvs, err := q.serviceKVs(res, svc)
		if err != nil {
			return err
		}
		rev, taken, err := res.store.CreateAll(ctx, kvs)
		if err == nil {
			svc.ResourceVersion = strconv.FormatInt(rev, 10)
			return nil
		}
		if !errors.Is(err, storage.ErrExists) {
			return err
		}
		if taken == kvs[0].Key {
			return apierrors.NewAlreadyExists(res.gr, svc.Name)
		}
		pickIP = false
		for _, ip := range serviceIPs(svc) {
			if taken != ipAddressKey(ip) {
				continue
			}
			if !wantIP {
				return invalid(field.Invalid(field.NewPath("spec", "clusterIPs"), svc.Spec.ClusterIPs,
					fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", ip)))
			}
			pickIP = true // the cache had not seen it yet: take the next one
		}
		for i, p := range svc.Spec.Ports {
			if userPorts[i] && taken == nodePortKey(p) {
				return invalid(field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, "provided port is already allocated"))
			}
		}
		// A randomly chosen node port was taken: choose again.
	}
	return apierrors.NewInternalError(errors.New("failed to allocate a service address: range is full or too contended"))
}

// serviceKVs are the keys and values of a new service and its reservations:
// the service, its IPAddress objects, its node ports.
func (q *Server) serviceKVs(res *resource, svc *corev1.Service) ([]storage.KV, error) {
	data, err := res.encode(svc)
	if err != nil {
		return nil, err
	}
	kvs := []storage.KV{{Key: res.key(svc.Namespace, svc.Name), Value: data}}
	for _, ip := range serviceIPs(svc) {
		kv, err := q.ipAddressKV(ip, svc.Namespace, svc.Name)
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, kv)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			kvs = append(kvs, storage.KV{Key: nodePortKey(p), Value: []byte(svc.Namespace + "/" + svc.Name)})
		}
	}
	return kvs, nil
}

// preserveNodePorts keeps the node ports of a service that an update (a PUT
// of a manifest without them) leaves empty.
func preserveNodePorts(next, cur *corev1.Service) {
	for i := range next.Spec.Ports {
		if next.Spec.Ports[i].NodePort != 0 {
			continue
		}
		for _, p := range cur.Spec.Ports {
			if p.Port == next.Spec.Ports[i].Port && p.Protocol == next.Spec.Ports[i].Protocol {
				next.Spec.Ports[i].NodePort = p.NodePort
			}
		}
	}
}

// needsClusterIP reports whether svc's type and spec call for cluster IPs.
func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// needsNodePorts reports whether svc's type calls for node ports.
func needsNodePorts(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
}

// prepareServiceUpdate settles the addresses of an updated service as
// upstream does when its type changes: what the old type allocated and the
// new one does not need is dropped (when the client left it as it was),
// what both need is kept, and what only the new type needs is allocated.
// The reservations move with the object in one transaction
// (serviceReservationChanges).
func (q *Server) prepareServiceUpdate(ctx context.Context, next, cur *corev1.Service) error {
	if !needsClusterIP(next) && needsClusterIP(cur) && next.Spec.ClusterIP != corev1.ClusterIPNone &&
		slices.Equal(serviceIPs(next), serviceIPs(cur)) {
		next.Spec.ClusterIP, next.Spec.ClusterIPs = "", nil
		next.Spec.IPFamilies, next.Spec.IPFamilyPolicy = nil, nil
	}
	if needsNodePorts(cur) && !needsNodePorts(next) {
		for i := range next.Spec.Ports {
			for _, p := range cur.Spec.Ports {
				if p.NodePort == next.Spec.Ports[i].NodePort && p.Protocol == next.Spec.Ports[i].Protocol {
					next.Spec.Ports[i].NodePort = 0
				}
			}
		}
		if next.Spec.HealthCheckNodePort == cur.Spec.HealthCheckNodePort {
			next.Spec.HealthCheckNodePort = 0
		}
		if next.Spec.ExternalTrafficPolicy == cur.Spec.ExternalTrafficPolicy {
			next.Spec.ExternalTrafficPolicy = ""
		}
	}
	if needsClusterIP(cur) && needsClusterIP(next) && next.Spec.ClusterIP == "" {
		next.Spec.ClusterIP, next.Spec.ClusterIPs = cur.Spec.ClusterIP, cur.Spec.ClusterIPs
	}
	if needsNodePorts(cur) && needsNodePorts(next) {
		preserveNodePorts(next, cur)
	}
	if needsClusterIP(next) && next.Spec.ClusterIP == "" {
		free, stop := q.freeServiceIPs(ctx, serviceFamily(next, q.serviceCIDR))
		defer stop()
		ip, ok := free()
		if !ok {
			return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP for Service %q: range is full", next.Name))
		}
		next.Spec.ClusterIP, next.Spec.ClusterIPs = ip.String(), []string{ip.String()}
	}
	if !needsNodePorts(next) {
		return nil
	}
	res := q.resources[corev1.SchemeGroupVersion.WithResource("services")]
	for i := range next.Spec.Ports {
		if next.Spec.Ports[i].NodePort != 0 {
			continue
		}
		// A port some other service holds would fail the transaction:
		// look before choosing (a race is refused, never stored twice).
		for attempt := 0; ; attempt++ {
			if attempt == maxAllocAttempts {
				return apierrors.NewInternalError(errors.New("failed to allocate a node port: range is full or too contended"))
			}
			p := next.Spec.Ports[i]
			p.NodePort = int32(q.nodePorts.Base + rand.IntN(q.nodePorts.Size))
			if _, err := res.store.Get(ctx, nodePortKey(p)); errors.Is(err, storage.ErrNotFound) {
				next.Spec.Ports[i].NodePort = p.NodePort
				break
			}
		}
	}
	return nil
}

// serviceReservationChanges are the reservations an update of a service
// must create and release with it.
func (q *Server) serviceReservationChanges(next, cur runtime.Object) ([]storage.KV, []string, error) {
	n, c := next.(*corev1.Service), cur.(*corev1.Service)
	held := sets.New(reservations(c)...)
	var creates []storage.KV
	for _, ip := range serviceIPs(n) {
		if held.Has(ipAddressKey(ip)) {
			continue
		}
		kv, err := q.ipAddressKV(ip, n.Namespace, n.Name)
		if err != nil {
			return nil, nil, err
		}
		creates = append(creates, kv)
	}
	for _, p := range n.Spec.Ports {
		if p.NodePort != 0 && !held.Has(nodePortKey(p)) {
			creates = append(creates, storage.KV{Key: nodePortKey(p), Value: []byte(n.Namespace + "/" + n.Name)})
		}
	}
	releases := sets.List(held.Difference(sets.New(reservations(n)...)))
	return creates, releases, nil
}

// reservationTaken is the 422 for an update whose address another object
// already holds.
func reservationTaken(obj runtime.Object, key string) error {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return apierrors.NewInternalError(fmt.Errorf("reservation %s is taken", key))
	}
	gk := corev1.SchemeGroupVersion.WithKind("Service").GroupKind()
	for i, p := range svc.Spec.Ports {
		if p.NodePort != 0 && nodePortKey(p) == key {
			return apierrors.NewInvalid(gk, svc.Name, field.ErrorList{field.Invalid(
				field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, "provided port is already allocated")})
		}
	}
	for _, ip := range serviceIPs(svc) {
		if ipAddressKey(ip) == key {
			return apierrors.NewInvalid(gk, svc.Name, field.ErrorList{field.Invalid(
				field.NewPath("spec", "clusterIPs"), svc.Spec.ClusterIPs, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", ip))})
		}
	}
	return apierrors.NewInternalError(fmt.Errorf("reservation %s is taken", key))
}
