package apiserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/utils/ptr"
)

// Every API server of a cluster holds an etcd key under masterLeasePrefix,
// named by its advertise address and bound to an etcd lease: while the
// server lives it renews the lease, and when it dies the key expires. The
// kubernetes Service's Endpoints and EndpointSlice list the addresses of
// the live keys, as upstream's lease endpoint reconciler does.
const (
	masterLeasePrefix = "/registry/masterleases/"
	masterLeaseTTL    = 15 // seconds
	reconcileInterval = 10 * time.Second
)

var endpointSlicesGVR = discoveryv1.SchemeGroupVersion.WithResource("endpointslices")

// RunEndpointReconciler keeps this server in the kubernetes Service's
// endpoints until ctx ends, then takes it out. Bootstrap has made the
// first pass.
func (s *Server) RunEndpointReconciler(ctx context.Context) {
	if s.serviceCIDR == nil || s.cfg.PublicAddress == nil {
		return
	}
	tick := time.NewTicker(reconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Leave at once so that clients stop using this server.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			defer cancel()
			if s.masterLease != 0 {
				_, _ = s.cfg.Store.Client().Revoke(stopCtx, s.masterLease)
			}
			if err := s.reconcileEndpoints(stopCtx); err != nil {
				s.log.Debug("kubernetes service endpoints at shutdown", "err", err)
			}
			return
		case <-tick.C:
		}
		if err := s.reconcileOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("kubernetes service endpoints", "err", err)
		}
	}
}

// reconcileOnce renews this server's key and rewrites the endpoints.
func (s *Server) reconcileOnce(ctx context.Context) error {
	lease, err := s.holdMasterLease(ctx, s.cfg.Store.Client(), masterLeasePrefix+s.cfg.PublicAddress.String(), s.masterLease)
	if err != nil {
		return err
	}
	s.masterLease = lease
	return s.reconcileEndpoints(ctx)
}

// holdMasterLease renews this server's lease (granting a new one when it
// expired) and writes its key under it when the key is missing: after this
// server's lease expired, or after another server advertising the same
// address died.
func (s *Server) holdMasterLease(ctx context.Context, client *clientv3.Client, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
	if lease != 0 {
		if _, err := client.KeepAliveOnce(ctx, lease); err != nil {
			lease = 0
		}
	}
	if lease == 0 {
		grant, err := client.Grant(ctx, masterLeaseTTL)
		if err != nil {
			return 0, fmt.Errorf("grant master lease: %w", err)
		}
		lease = grant.ID
	}
	_, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, strconv.Itoa(s.cfg.PublicPort), clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("write master lease: %w", err)
	}
	return lease, nil
}

// apiEndpoint is a live API server's address and port.
type apiEndpoint struct {
	ip   string
	port int32
}

// liveServers returns the API servers whose keys have not expired, sorted
// by address.
func (s *Server) liveServers(ctx context.Context) ([]apiEndpoint, error) {
	resp, err := s.cfg.Store.Client().Get(ctx, masterLeasePrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list master leases: %w", err)
	}
	out := make([]apiEndpoint, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ip := strings.TrimPrefix(string(kv.Key), masterLeasePrefix)
		port, err := strconv.Atoi(string(kv.Value))
		if net.ParseIP(ip) == nil || err != nil {
			// Written by an older server: it advertised only its address.
			port = s.cfg.PublicPort
		}
		if net.ParseIP(ip) != nil {
			out = append(out, apiEndpoint{ip: ip, port: int32(port)})
		}
	}
	slices.SortFunc(out, func(a, b apiEndpoint) int { return strings.Compare(a.ip, b.ip) })
	return out, nil
}

// reconcileEndpoints writes the live servers into default/kubernetes's
// Endpoints and EndpointSlice, when they differ.
func (s *Server) reconcileEndpoints(ctx context.Context) error {
	live, err := s.liveServers(ctx)
	if err != nil {
		return err
	}
	// Servers of one cluster share a port; should they not (several on
	// one machine), each port gets its subset, and the slice the first's.
	subsets := []corev1.EndpointSubset{}
	for _, e := range live {
		i := slices.IndexFunc(subsets, func(sub corev1.EndpointSubset) bool { return sub.Ports[0].Port == e.port })
		if i < 0 {
			subsets = append(subsets, corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: e.port, Protocol: corev1.ProtocolTCP}}})
			i = len(subsets) - 1
		}
		subsets[i].Addresses = append(subsets[i].Addresses, corev1.EndpointAddress{IP: e.ip})
	}
	port := int32(s.cfg.PublicPort)
	var ips []string
	if len(subsets) > 0 {
		port = subsets[0].Ports[0].Port
		for _, a := range subsets[0].Addresses {
			ips = append(ips, a.IP)
		}
	}
	ep := &corev1.Endpoints{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Endpoints"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "kubernetes", Namespace: metav1.NamespaceDefault, UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"},
		},
		Subsets: subsets,
	}
	if err := s.writeSystemObject(ctx, corev1.SchemeGroupVersion.WithResource("endpoints"), ep, func(cur runtime.Object) bool {
		c := cur.(*corev1.Endpoints)
		if equality.Semantic.DeepEqual(c.Subsets, ep.Subsets) {
			return false
		}
		c.Subsets = ep.Subsets
		return true
	}); err != nil {
		return fmt.Errorf("write kubernetes endpoints: %w", err)
	}
	slice := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "kubernetes", Namespace: metav1.NamespaceDefault, UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		})
	}
	if err := s.writeSystemObject(ctx, endpointSlicesGVR, slice, func(cur runtime.Object) bool {
		c := cur.(*discoveryv1.EndpointSlice)
		if equality.Semantic.DeepEqual(c.Endpoints, slice.Endpoints) && equality.Semantic.DeepEqual(c.Ports, slice.Ports) {
			return false
		}
		c.Endpoints, c.Ports, c.Labels, c.AddressType = slice.Endpoints, slice.Ports, slice.Labels, slice.AddressType
		return true
	}); err != nil {
		return fmt.Errorf("write kubernetes endpoint slice: %w", err)
	}
	return nil
}

// writeSystemObject creates obj, or updates the stored one with change
// (which reports whether it changed anything; an unchanged object is not
// written).
func (s *Server) writeSystemObject(ctx context.Context, gvr schema.GroupVersionResource, obj runtime.Object, change func(cur runtime.Object) bool) error {
	res := s.resources[gvr]
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	_, err = res.guaranteedUpdate(ctx, m.GetNamespace(), m.GetName(), func(cur runtime.Object) (runtime.Object, error) {
		change(cur)
		return cur, nil
	})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		if _, err := res.create(ctx, obj); err != nil && !isAlreadyExists(err) {
			return err
		}
		return nil
	}
	return err
}
