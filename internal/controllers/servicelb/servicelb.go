// Package servicelb is the built-in load balancer for Services of type
// LoadBalancer (as k3s's service load balancer): every node serves them on
// its own addresses (the service proxy routes the traffic), and the
// controller publishes those addresses in status.loadBalancer.ingress.
package servicelb

import (
	"context"
	"log/slog"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

// Controller keeps load-balancer ingress addresses up to date.
type Controller struct {
	client   kubernetes.Interface
	services listerscorev1.ServiceLister
	nodes    listerscorev1.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	c := &Controller{
		client:   client,
		services: factory.Core().V1().Services().Lister(),
		nodes:    factory.Core().V1().Nodes().Lister(),
		queue:    controllerutil.NewQueue("servicelb"),
		log:      log,
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
	// Nodes coming and going change every load balancer's addresses.
	all := func(any) {
		svcs, _ := c.services.List(labels.Everything())
		for _, s := range svcs {
			enqueue(s)
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

func (c *Controller) sync(ctx context.Context, key string) error {
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
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	var ips []string
	for _, n := range nodes {
		if ready(n) && !n.Spec.Unschedulable {
			ips = append(ips, nodeAddrs(n)...)
		}
	}
	sort.Strings(ips)
	ips = slices.Compact(ips)
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
