// Package servicecidr keeps ServiceCIDRs honest: each gets the protection
// finalizer and a Ready condition, and one being deleted keeps its
// finalizer while a Service IP (an IPAddress object) lies in it and in no
// other ServiceCIDR, as upstream's service-cidr-controller does.
package servicecidr

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersnetworkingv1 "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

const (
	// Finalizer protects a ServiceCIDR that Service IPs still use.
	Finalizer = "networking.k8s.io/service-cidr-finalizer"
	// managedBy marks the IPAddress objects of Service cluster IPs.
	managedBy = "ipallocator.k8s.io"
	// deletionGrace lets allocations racing with the deletion land before
	// the last check, as upstream waits.
	deletionGrace = 10 * time.Second

	readyMessage       = "Kubernetes Service CIDR is ready"
	terminatingMessage = "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR"
)

// Controller reconciles ServiceCIDRs.
type Controller struct {
	client  kubernetes.Interface
	cidrs   listersnetworkingv1.ServiceCIDRLister
	ips     listersnetworkingv1.IPAddressLister
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	grace   time.Duration
	nowFunc func() time.Time
}

// New builds the controller on the factory's ServiceCIDR and IPAddress
// informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	cidrInf := factory.Networking().V1().ServiceCIDRs()
	ipInf := factory.Networking().V1().IPAddresses()
	c := &Controller{
		client: client, log: log, grace: deletionGrace, nowFunc: time.Now,
		cidrs:  cidrInf.Lister(),
		ips:    ipInf.Lister(),
		synced: []cache.InformerSynced{cidrInf.Informer().HasSynced, ipInf.Informer().HasSynced},
		queue:  controllerutil.NewQueue("service-cidr-controller"),
	}
	_, _ = cidrInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if sc, ok := o.(*networkingv1.ServiceCIDR); ok {
				// A new range may free an overlapping one being deleted.
				c.queue.Add(sc.Name)
				for _, name := range c.overlapping(sc) {
					c.queue.Add(name)
				}
			}
		},
		UpdateFunc: func(_, o any) { c.enqueue(o) },
		DeleteFunc: c.enqueue,
	})
	_, _ = ipInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueContaining,
		DeleteFunc: c.enqueueContaining,
	})
	return c
}

func (c *Controller) enqueue(o any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
		c.queue.Add(key)
	}
}

// enqueueContaining queues the ServiceCIDRs holding a Service IP.
func (c *Controller) enqueueContaining(o any) {
	o = informerutil.Unwrap(o)
	ip, ok := o.(*networkingv1.IPAddress)
	if !ok || ip.Labels[networkingv1.LabelManagedBy] != managedBy {
		return
	}
	addr, err := netip.ParseAddr(ip.Name)
	if err != nil {
		return
	}
	for _, sc := range c.containing(func(p netip.Prefix) bool { return p.Contains(addr) }) {
		c.queue.Add(sc.Name)
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	sc, err := c.cidrs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if sc.DeletionTimestamp == nil {
		if err := c.addFinalizer(ctx, sc); err != nil {
			return err
		}
		return c.setReady(ctx, sc, metav1.ConditionTrue, "", readyMessage)
	}
	free, err := c.canDelete(sc)
	if err != nil {
		return err
	}
	if !free {
		return c.setReady(ctx, sc, metav1.ConditionFalse, networkingv1.ServiceCIDRReasonTerminating, terminatingMessage)
	}
	if wait := c.grace - c.nowFunc().Sub(sc.DeletionTimestamp.Time); wait > 0 {
		return controllerutil.RequeueAfter(wait)
	}
	return c.removeFinalizer(ctx, sc)
}

// canDelete reports whether no Service IP depends on sc alone: its ranges
// lie inside other ServiceCIDRs, or every IP inside them is also inside
// another ServiceCIDR.
func (c *Controller) canDelete(sc *networkingv1.ServiceCIDR) (bool, error) {
	var prefixes []netip.Prefix
	covered := true
	for _, s := range sc.Spec.CIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		prefixes = append(prefixes, p)
		if !c.coveredByOther(sc.Name, func(o netip.Prefix) bool { return o.Bits() <= p.Bits() && o.Contains(p.Addr()) }) {
			covered = false
		}
	}
	if covered {
		return true, nil
	}
	ips, err := c.ips.List(labels.SelectorFromSet(labels.Set{networkingv1.LabelManagedBy: managedBy}))
	if err != nil {
		return false, err
	}
	for _, ip := range ips {
		addr, err := netip.ParseAddr(ip.Name)
		if err != nil || !slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(addr) }) {
			continue
		}
		if !c.coveredByOther(sc.Name, func(o netip.Prefix) bool { return o.Contains(addr) }) {
			return false, nil
		}
	}
	return true, nil
}

// coveredByOther reports whether a ServiceCIDR other than name has a range
// matching in.
func (c *Controller) coveredByOther(name string, in func(netip.Prefix) bool) bool {
	return slices.ContainsFunc(c.containing(in), func(o *networkingv1.ServiceCIDR) bool { return o.Name != name })
}

// containing lists the ServiceCIDRs with a range matching in.
func (c *Controller) containing(in func(netip.Prefix) bool) []*networkingv1.ServiceCIDR {
	all, err := c.cidrs.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*networkingv1.ServiceCIDR
	for _, sc := range all {
		for _, s := range sc.Spec.CIDRs {
			if p, err := netip.ParsePrefix(s); err == nil && in(p) {
				out = append(out, sc)
				break
			}
		}
	}
	return out
}

// overlapping names the ServiceCIDRs sharing an address with sc.
func (c *Controller) overlapping(sc *networkingv1.ServiceCIDR) []string {
	var names []string
	for _, s := range sc.Spec.CIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		for _, o := range c.containing(p.Overlaps) {
			if o.Name != sc.Name && !slices.Contains(names, o.Name) {
				names = append(names, o.Name)
			}
		}
	}
	return names
}

func (c *Controller) addFinalizer(ctx context.Context, sc *networkingv1.ServiceCIDR) error {
	if slices.Contains(sc.Finalizers, Finalizer) {
		return nil
	}
	sc = sc.DeepCopy()
	sc.Finalizers = append(sc.Finalizers, Finalizer)
	_, err := c.client.NetworkingV1().ServiceCIDRs().Update(ctx, sc, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Controller) removeFinalizer(ctx context.Context, sc *networkingv1.ServiceCIDR) error {
	if !slices.Contains(sc.Finalizers, Finalizer) {
		return nil
	}
	sc = sc.DeepCopy()
	sc.Finalizers = slices.DeleteFunc(sc.Finalizers, func(f string) bool { return f == Finalizer })
	_, err := c.client.NetworkingV1().ServiceCIDRs().Update(ctx, sc, metav1.UpdateOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err == nil:
		c.log.Info("released ServiceCIDR: no Service IP depends on it", "servicecidr", sc.Name)
	}
	return err
}

// setReady writes the Ready condition unless it already says the same.
func (c *Controller) setReady(ctx context.Context, sc *networkingv1.ServiceCIDR, status metav1.ConditionStatus, reason, msg string) error {
	cur := meta.FindStatusCondition(sc.Status.Conditions, networkingv1.ServiceCIDRConditionReady)
	if cur != nil && cur.Status == status && cur.Reason == reason && cur.Message == msg {
		return nil
	}
	sc = sc.DeepCopy()
	meta.SetStatusCondition(&sc.Status.Conditions, metav1.Condition{
		Type: networkingv1.ServiceCIDRConditionReady, Status: status, Reason: reason, Message: msg,
		LastTransitionTime: metav1.NewTime(c.nowFunc()),
	})
	_, err := c.client.NetworkingV1().ServiceCIDRs().UpdateStatus(ctx, sc, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
