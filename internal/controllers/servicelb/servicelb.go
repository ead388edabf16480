// Package servicelb is the built-in load balancer for Services of type
// LoadBalancer (as k3s's service load balancer): every node serves them on
// its own addresses (the service proxy routes the traffic), and the
// controller publishes those addresses in status.loadBalancer.ingress. It
// does the same for Ingresses of the built-in class, which every node's
// ingress controller serves.
package servicelb

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// Controller keeps load-balancer ingress addresses up to date.
type Controller struct {
	client    kubernetes.Interface
	services  listerscorev1.ServiceLister
	ingresses networkinglisters.IngressLister
	nodes     listerscorev1.NodeLister
	queue     workqueue.TypedRateLimitingInterface[string]
	log       *slog.Logger
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	c := &Controller{
		client:    client,
		services:  factory.Core().V1().Services().Lister(),
		ingresses: factory.Networking().V1().Ingresses().Lister(),
		nodes:     factory.Core().V1().Nodes().Lister(),
		queue:     controllerutil.NewQueue("servicelb"),
		log:       log,
	}
	enqueue := func(obj any) {
		if svc, ok := obj.(*corev1.Service); ok && svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			if key, err := cache.MetaNamespaceKeyFunc(svc); err == nil {
				c.queue.Add(key)
			}
		}
	}
	_, _ = factory.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	enqueueIngress := func(obj any) {
		if ing, ok := obj.(*networkingv1.Ingress); ok && builtinClass(ing) {
			if key, err := cache.MetaNamespaceKeyFunc(ing); err == nil {
				c.queue.Add(ingressPrefix + key)
			}
		}
	}
	_, _ = factory.Networking().V1().Ingresses().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueueIngress, UpdateFunc: func(_, obj any) { enqueueIngress(obj) },
	})
	// Nodes coming and going change every load balancer's addresses.
	all := func(any) {
		svcs, _ := c.services.List(labels.Everything())
		for _, s := range svcs {
			enqueue(s)
		}
		ings, _ := c.ingresses.List(labels.Everything())
		for _, i := range ings {
			enqueueIngress(i)
		}
	}
	_, _ = factory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: all, UpdateFunc: func(old, obj any) {
			if !slices.Equal(nodeAddrs(old.(*corev1.Node)), nodeAddrs(obj.(*corev1.Node))) || ready(old.(*corev1.Node)) != ready(obj.(*corev1.Node)) {
				all(obj)
			}
		}, DeleteFunc: all,
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.RunWorkers(ctx, c.queue, 1, c.sync, c.log)
}

// ingressPrefix marks Ingress keys in the shared queue.
const ingressPrefix = "ingress/"

// builtinClass says whether the built-in ingress controller serves ing:
// class "skiff", or no class (skiff is the default class).
func builtinClass(ing *networkingv1.Ingress) bool {
	return ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName == "skiff"
}

func (c *Controller) readyAddresses() ([]string, error) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, n := range nodes {
		if ready(n) && !n.Spec.Unschedulable {
			ips = append(ips, nodeAddrs(n)...)
		}
	}
	sort.Strings(ips)
	return slices.Compact(ips), nil
}

func (c *Controller) syncIngress(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ing, err := c.ingresses.Ingresses(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || !builtinClass(ing) {
		return err
	}
	ips, err := c.readyAddresses()
	if err != nil {
		return err
	}
	want := make([]networkingv1.IngressLoadBalancerIngress, 0, len(ips))
	for _, ip := range ips {
		want = append(want, networkingv1.IngressLoadBalancerIngress{IP: ip})
	}
	cur := ing.Status.LoadBalancer.Ingress
	if len(cur) == len(want) && slices.EqualFunc(cur, want, func(a, b networkingv1.IngressLoadBalancerIngress) bool { return a.IP == b.IP }) {
		return nil
	}
	updated := ing.DeepCopy()
	updated.Status.LoadBalancer.Ingress = want
	_, err = c.client.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

func (c *Controller) sync(ctx context.Context, key string) error {
	if k, ok := strings.CutPrefix(key, ingressPrefix); ok {
		return c.syncIngress(ctx, k)
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && svc.Spec.Type != corev1.ServiceTypeLoadBalancer) {
		return nil
	}
	if err != nil {
		return err
	}
	if svc.Spec.LoadBalancerClass != nil {
		return nil // another implementation's
	}
	ips, err := c.readyAddresses()
	if err != nil {
		return err
	}
	ingress := make([]corev1.LoadBalancerIngress, 0, len(ips))
	for _, ip := range ips {
		ingress = append(ingress, corev1.LoadBalancerIngress{IP: ip, IPMode: ptrTo(corev1.LoadBalancerIPModeVIP)})
	}
	if equalIngress(svc.Status.LoadBalancer.Ingress, ingress) {
		return nil
	}
	updated := svc.DeepCopy()
	updated.Status.LoadBalancer.Ingress = ingress
	_, err = c.client.CoreV1().Services(ns).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

func ptrTo[T any](v T) *T { return &v }

func equalIngress(a, b []corev1.LoadBalancerIngress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].IP != b[i].IP {
			return false
		}
	}
	return true
}

func nodeAddrs(n *corev1.Node) []string {
	var out []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
			out = append(out, a.Address)
		}
	}
	return out
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
