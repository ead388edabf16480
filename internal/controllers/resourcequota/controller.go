// Package resourcequota keeps ResourceQuota status up to date: status.hard
// mirrors spec.hard and status.used is what the namespace's objects use of
// each limited resource, by the rules of internal/quota.
package resourcequota

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"

	"github.com/skiff-dev/skiff/internal/quota"
)

// ResyncPeriod is how often every quota is recomputed regardless of
// events, as upstream's full resync.
const ResyncPeriod = 5 * time.Minute

// Controller recomputes a quota's status when it or an object of a
// resource it tracks changes, and every ResyncPeriod.
type Controller struct {
	client  kubernetes.Interface
	quotas  listerscorev1.ResourceQuotaLister
	listers map[schema.GroupResource]cache.GenericLister
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	// Clock reads the time and ticks the resync; tests pass a fake one.
	Clock clock.WithTicker
	// dynamic counts other resources, when UseMetadata was called.
	dynamic *dynamicCounts
}

// UseMetadata lets the controller count objects of any resource the API
// server serves (count/<resource>.<group> of custom resources, say), with
// metadata informers over meta, resolving resources with disc.
func (c *Controller) UseMetadata(meta metadata.Interface, disc discovery.DiscoveryInterface) {
	c.dynamic = newDynamicCounts(meta, disc, func(gr schema.GroupResource, o any) { c.objectChanged(gr, nil, o) })
}

// New builds the controller over the shared informers of the quota and
// of every resource it counts (core ones, apps and batch workloads).
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	c := &Controller{
		client:  client,
		listers: map[schema.GroupResource]cache.GenericLister{},
		queue:   controllerutil.NewQueue("resourcequota"),
		log:     log,
		Clock:   clock.RealClock{},
	}
	q := factory.Core().V1().ResourceQuotas()
	c.quotas = q.Lister()
	c.synced = append(c.synced, q.Informer().HasSynced)
	_, _ = q.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueQuota,
		UpdateFunc: func(old, cur any) { c.quotaUpdated(old, cur) },
	})
	for _, gvr := range Tracked {
		inf, err := factory.ForResource(gvr)
		if err != nil {
			log.Error("no informer for tracked resource", "resource", gvr, "err", err)
			continue
		}
		gr := gvr.GroupResource()
		c.listers[gr] = inf.Lister()
		c.synced = append(c.synced, inf.Informer().HasSynced)
		// No recount on add, nor on an update that leaves the object's
		// usage as it was, as upstream: admission charged the create to
		// status.used already, and a recount racing the next create's
		// charge could write that charge away before its object is listed.
		_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(old, o any) { c.objectChanged(gr, old, o) },
			DeleteFunc: func(o any) { c.objectChanged(gr, nil, o) },
		})
	}
	return c
}

// Tracked are the resources whose objects the controller counts.
var Tracked = []schema.GroupVersionResource{
	corev1.SchemeGroupVersion.WithResource("pods"),
	corev1.SchemeGroupVersion.WithResource("services"),
	corev1.SchemeGroupVersion.WithResource("secrets"),
	corev1.SchemeGroupVersion.WithResource("configmaps"),
	corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims"),
	corev1.SchemeGroupVersion.WithResource("replicationcontrollers"),
	corev1.SchemeGroupVersion.WithResource("resourcequotas"),
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "batch", Version: "v1", Resource: "jobs"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
}

func (c *Controller) enqueueQuota(o any) {
	if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
		c.queue.Add(key)
	}
}

// quotaUpdated recounts on a change of spec.hard only, as upstream: its
// own status writes need none, and a status written by someone else is
// left alone until the periodic resync (conformance writes status and
// reads it back).
func (c *Controller) quotaUpdated(old, cur any) {
	o, ok1 := old.(*corev1.ResourceQuota)
	n, ok2 := cur.(*corev1.ResourceQuota)
	if ok1 && ok2 && Equal(o.Spec.Hard, n.Spec.Hard) {
		return
	}
	c.enqueueQuota(cur)
}

// usageChanged reports whether an update changed what the object counts
// for: a pod that finished, a Service of another type, a claim resized
// (upstream's replenishment triggers, in general form).
func (c *Controller) usageChanged(gr schema.GroupResource, old, cur any) bool {
	o, ok1 := old.(runtime.Object)
	n, ok2 := cur.(runtime.Object)
	if !ok1 || !ok2 {
		return true
	}
	now := c.Clock.Now()
	return !Equal(quota.Usage(gr, o, now), quota.Usage(gr, n, now))
}

// objectChanged enqueues the namespace's quotas that track gr, for a
// deletion (old nil) or an update that changed the object's usage.
func (c *Controller) objectChanged(gr schema.GroupResource, old, o any) {
	o = informerutil.Unwrap(o)
	m, ok := o.(metav1.Object)
	if !ok {
		return
	}
	quotas, err := c.quotas.ResourceQuotas(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	usageChecked := old == nil
	for _, q := range quotas {
		if !quota.Matches(gr, q.Spec.Hard) {
			continue
		}
		// Usage is worked out only where a quota tracks it: most
		// namespaces have none, and pods are updated often.
		if !usageChecked {
			if !c.usageChanged(gr, old, o) {
				return
			}
			usageChecked = true
		}
		c.queue.Add(q.Namespace + "/" + q.Name)
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if c.dynamic != nil {
		c.dynamic.start(ctx)
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		c.queue.ShutDown()
		return
	}
	go func() {
		t := c.Clock.NewTicker(ResyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				c.enqueueAll()
			}
		}
	}()
	controllerutil.RunWorkers(ctx, c.queue, 5, c.sync, c.log)
}

func (c *Controller) enqueueAll() {
	quotas, err := c.quotas.List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range quotas {
		c.queue.Add(q.Namespace + "/" + q.Name)
	}
}

func (c *Controller) list(gr schema.GroupResource, ns string) ([]runtime.Object, bool, error) {
	l, ok := c.listers[gr]
	if !ok {
		if c.dynamic != nil {
			return c.dynamic.list(gr, ns)
		}
		return nil, false, nil
	}
	objs, err := l.ByNamespace(ns).List(labels.Everything())
	return objs, true, err
}

// sync writes the quota's status when it differs from the computed one.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	q, err := c.quotas.ResourceQuotas(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	used, err := Used(&q.Spec, ns, c.list, c.Clock.Now())
	if err != nil {
		return fmt.Errorf("computing usage of %s: %w", key, err)
	}
	if Equal(q.Status.Hard, q.Spec.Hard) && Equal(q.Status.Used, used) {
		return nil
	}
	q = q.DeepCopy()
	q.Status.Hard = q.Spec.Hard.DeepCopy()
	q.Status.Used = used
	_, err = c.client.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if apierrors.IsConflict(err) {
		c.queue.AddRateLimited(key) // changed meanwhile: the informer brings the new one
		return nil
	}
	if err != nil {
		return fmt.Errorf("updating status of %s: %w", key, err)
	}
	return nil
}
