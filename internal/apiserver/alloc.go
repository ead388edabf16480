package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/storage"
)

// Reservation keys: one etcd key per allocated cluster IP and node port,
// created in the same transaction as the Service that holds it, so two
// services can never be given the same address.
const (
	clusterIPPrefix = "/registry/ranges/serviceips/"
	nodePortPrefix  = "/registry/ranges/servicenodeports/"
)

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

// reservations returns the keys a service holds.
func reservations(svc *corev1.Service) []string {
	var keys []string
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		keys = append(keys, clusterIPPrefix+ip)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			keys = append(keys, nodePortKey(p))
		}
	}
	return keys
}

func nodePortKey(p corev1.ServicePort) string {
	return nodePortPrefix + strconv.Itoa(int(p.NodePort)) + "-" + string(p.Protocol)
}

// createService stores a new service with its cluster IP and node ports,
// picking free ones where the user left them unset and retrying when a
// randomly picked address turns out to be taken.
func (q *Server) createService(ctx context.Context, svc *corev1.Service) error {
	res := q.resources[corev1.SchemeGroupVersion.WithResource("services")]
	wantIP := svc.Spec.ClusterIP == ""
	needsIP := svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
	if needsIP && !wantIP {
		ip := net.ParseIP(svc.Spec.ClusterIP)
		if ip == nil || q.serviceCIDR == nil || !q.serviceCIDR.Contains(ip) {
			return apierrors.NewInvalid(res.gvk.GroupKind(), svc.Name, field.ErrorList{field.Invalid(
				field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, svc.Spec.ClusterIP, q.serviceCIDR))})
		}
	}
	wantPorts := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	userPorts := map[int]bool{}
	for i, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			if p.NodePort < int32(q.nodePorts.Base) || int(p.NodePort) >= q.nodePorts.Base+q.nodePorts.Size {
				return apierrors.NewInvalid(res.gvk.GroupKind(), svc.Name, field.ErrorList{field.Invalid(
					field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", q.nodePorts.Base, q.nodePorts.Base+q.nodePorts.Size-1))})
			}
			userPorts[i] = true
		}
	}
	for attempt := 0; attempt < 64; attempt++ {
		if needsIP && wantIP {
			ip, err := q.randomServiceIP()
			if err != nil {
				return err
			}
			svc.Spec.ClusterIP = ip
		}
		if needsIP {
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		}
		if wantPorts {
			for i := range svc.Spec.Ports {
				if !userPorts[i] {
					svc.Spec.Ports[i].NodePort = int32(q.nodePorts.Base + rand.IntN(q.nodePorts.Size))
				}
			}
		}
		data, err := res.encode(svc)
		if err != nil {
			return err
		}
		kvs := []storage.KV{{Key: res.key(svc.Namespace, svc.Name), Value: data}}
		for _, k := range reservations(svc) {
			kvs = append(kvs, storage.KV{Key: k, Value: []byte(svc.Namespace + "/" + svc.Name)})
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
		if taken == clusterIPPrefix+svc.Spec.ClusterIP && !wantIP {
			return apierrors.NewInvalid(res.gvk.GroupKind(), svc.Name, field.ErrorList{field.Invalid(
				field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIP, fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP))})
		}
		for i, p := range svc.Spec.Ports {
			if userPorts[i] && taken == nodePortKey(p) {
				return apierrors.NewInvalid(res.gvk.GroupKind(), svc.Name, field.ErrorList{field.Invalid(
					field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, "provided port is already allocated")})
			}
		}
		// A randomly chosen address was taken: choose again.
	}
	return apierrors.NewInternalError(errors.New("failed to allocate a service address: range is full or too contended"))
}

// preserveServiceAddrs keeps the allocated addresses of a service that an
// update (a PUT of a manifest without them) leaves empty.
func preserveServiceAddrs(next, cur *corev1.Service) {
	if next.Spec.ClusterIP == "" {
		next.Spec.ClusterIP, next.Spec.ClusterIPs = cur.Spec.ClusterIP, cur.Spec.ClusterIPs
	}
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

// randomServiceIP picks an address in the service range, skipping the
// network address, the first address (the kubernetes service) and the
// broadcast address.
func (q *Server) randomServiceIP() (string, error) {
	if q.serviceCIDR == nil {
		return "", apierrors.NewInternalError(errors.New("no service cluster IP range configured"))
	}
	ones, bits := q.serviceCIDR.Mask.Size()
	size := int64(1) << (bits - ones)
	if size < 4 {
		return "", apierrors.NewInternalError(errors.New("service cluster IP range too small"))
	}
	return addIP(q.serviceCIDR.IP, 2+rand.Int64N(size-3)).String(), nil
}

// ClusterDNSServiceIP is the tenth address of the service range, where
// upstream puts the cluster DNS Service (10.96.0.10 for 10.96.0.0/12).
func ClusterDNSServiceIP(cidr *net.IPNet) net.IP {
	return addIP(cidr.IP, 10)
}
