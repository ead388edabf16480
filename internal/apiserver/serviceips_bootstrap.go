package apiserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiff-dev/skiff/internal/storage"
)

// DefaultServiceCIDRName is the ServiceCIDR the server creates from its
// --service-cluster-ip-range, as upstream names it.
const DefaultServiceCIDRName = "kubernetes"

// legacyServiceIPPrefix held cluster IP reservations (value "ns/name")
// before they became IPAddress objects; migrateServiceIPs converts them.
const legacyServiceIPPrefix = "/registry/ranges/serviceips/"

// bootstrapServiceIPs creates the default ServiceCIDR and gives every
// Service's cluster IP its IPAddress object: servers upgraded from the
// reservation keys keep their addresses, and an IPAddress deleted while
// its Service lives is restored.
func (s *Server) bootstrapServiceIPs(ctx context.Context) error {
	if err := s.bootstrapServiceCIDR(ctx); err != nil {
		return err
	}
	return s.migrateServiceIPs(ctx)
}

// serviceIPRepairInterval is how often RunServiceIPRepair looks, as often
// as upstream's default-servicecidr controller.
const serviceIPRepairInterval = 10 * time.Second

// RunServiceIPRepair keeps, until ctx ends, what bootstrapServiceIPs set
// up: the default ServiceCIDR comes back if deleted, and a Service whose
// IPAddress was deleted by hand gets it back before another Service can
// be given the address.
func (s *Server) RunServiceIPRepair(ctx context.Context) {
	t := time.NewTicker(serviceIPRepairInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.bootstrapServiceIPs(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("repair service IPs", "err", err)
		}
	}
}

// bootstrapServiceCIDR creates ServiceCIDR "kubernetes" for the configured
// range, Ready as upstream's default-servicecidr controller marks it, and
// waits until the allocator's cache holds it.
func (s *Server) bootstrapServiceCIDR(ctx context.Context) error {
	res := s.resources[serviceCIDRsGVR]
	if s.serviceCIDR == nil || res == nil {
		return nil
	}
	ready := metav1.Condition{
		Type: networkingv1.ServiceCIDRConditionReady, Status: metav1.ConditionTrue,
		Message: "Kubernetes default Service CIDR is ready", LastTransitionTime: metav1.Now(),
	}
	sc := &networkingv1.ServiceCIDR{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "ServiceCIDR"},
		ObjectMeta: metav1.ObjectMeta{
			Name: DefaultServiceCIDRName, UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
		},
		Spec:   networkingv1.ServiceCIDRSpec{CIDRs: []string{s.serviceCIDR.String()}},
		Status: networkingv1.ServiceCIDRStatus{Conditions: []metav1.Condition{ready}},
	}
	out, err := res.create(ctx, sc)
	if isAlreadyExists(err) || errors.Is(err, storage.ErrExists) {
		// Mark an existing one Ready unless a controller decided otherwise.
		out, err = res.guaranteedUpdate(ctx, "", DefaultServiceCIDRName, func(cur runtime.Object) (runtime.Object, error) {
			sc := cur.(*networkingv1.ServiceCIDR)
			if c := meta.FindStatusCondition(sc.Status.Conditions, ready.Type); c == nil || c.Status == metav1.ConditionUnknown {
				meta.SetStatusCondition(&sc.Status.Conditions, ready)
			}
			return sc, nil
		})
	}
	if err != nil {
		return fmt.Errorf("create the default ServiceCIDR: %w", err)
	}
	m, _ := meta.Accessor(out)
	rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
	return res.cache.WaitRev(ctx, rev)
}

// migrateServiceIPs creates the missing IPAddress object of every Service
// cluster IP, then drops the old reservation keys.
func (s *Server) migrateServiceIPs(ctx context.Context) error {
	svcRes, ipRes := s.resources[corev1.SchemeGroupVersion.WithResource("services")], s.resources[ipAddressesGVR]
	if svcRes == nil || ipRes == nil {
		return nil
	}
	for _, c := range []*storage.Cache{svcRes.cache, ipRes.cache} {
		if err := c.WaitFresh(ctx); err != nil {
			return err
		}
	}
	entries, _ := svcRes.cache.List(svcRes.prefix, nil)
	for _, e := range entries {
		svc := e.Obj.(*corev1.Service)
		for _, ip := range serviceIPs(svc) {
			if _, ok := ipRes.cache.Get(ipAddressKey(ip)); ok {
				continue
			}
			if err := s.restoreServiceIP(ctx, svcRes, svc, ip); err != nil {
				return fmt.Errorf("restore the IPAddress %s of service %s/%s: %w", ip, svc.Namespace, svc.Name, err)
			}
		}
	}
	for start := ""; ; {
		kvs, _, more, err := svcRes.store.ListPage(ctx, legacyServiceIPPrefix, start, 0, 500)
		if err != nil {
			return fmt.Errorf("list old service IP reservations: %w", err)
		}
		for _, kv := range kvs {
			if _, _, err := svcRes.store.Delete(ctx, kv.Key, kv.Rev); err != nil && !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("delete old reservation %s: %w", kv.Key, err)
			}
		}
		if !more || len(kvs) == 0 {
			return nil
		}
		start = kvs[len(kvs)-1].Key + "\x00"
	}
}

// restoreServiceIP creates the IPAddress of ip for svc. The service may
// have been deleted (with its addresses) since the cache showed it: then
// the new object is removed again, so that nothing leaks.
func (s *Server) restoreServiceIP(ctx context.Context, svcRes *resource, svc *corev1.Service, ip string) error {
	kv, err := s.ipAddressKV(ip, svc.Namespace, svc.Name)
	if err != nil {
		return err
	}
	rev, _, err := svcRes.store.CreateAll(ctx, []storage.KV{kv})
	if errors.Is(err, storage.ErrExists) {
		return nil // someone holds it: the service's own create, or a conflict to report by hand
	}
	if err != nil {
		return err
	}
	cur, _, err := svcRes.get(ctx, svc.Namespace, svc.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if cur != nil && cur.(*corev1.Service).UID == svc.UID && slices.Contains(serviceIPs(cur.(*corev1.Service)), ip) {
		s.log.Info("restored the IPAddress of a service", "service", svc.Namespace+"/"+svc.Name, "ip", ip)
		return nil
	}
	if _, _, err := svcRes.store.Delete(ctx, kv.Key, rev); err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrConflict) {
		return err
	}
	return nil
}
