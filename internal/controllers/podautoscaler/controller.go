// Package podautoscaler is the HorizontalPodAutoscaler controller
// (autoscaling/v2): every resync period it reads each HPA's target through
// the scale subresource, the pods' resource usage through metrics.k8s.io,
// proposes a replica count with upstream's algorithm, bounds it with the
// HPA's behavior (stabilization windows, scaling policies, min and max),
// rescales the target and reports status, conditions and events.
package podautoscaler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersautoscalingv2 "k8s.io/client-go/listers/autoscaling/v2"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
)

const (
	// defaultResync is upstream's --horizontal-pod-autoscaler-sync-period.
	defaultResync = 15 * time.Second
	// workers is upstream's --concurrent-horizontal-pod-autoscaler-syncs.
	workers = 5
)

// Config is what the controller acts through besides its typed client.
type Config struct {
	// Scales reads and writes targets' scale subresources.
	Scales scale.ScalesGetter
	// Mapper maps a target's kind to its resource. A mapper with a Reset
	// method (discovery-backed) is reset when a kind is not found, so
	// custom resources defined later are found.
	Mapper meta.RESTMapper
	// Metrics lists pods' resource usage.
	Metrics MetricsSource
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Resync defaults to 15 s; DownscaleWindow to 5 min.
	Resync          time.Duration
	DownscaleWindow time.Duration
}

// Controller scales targets of HorizontalPodAutoscalers.
type Controller struct {
	client      kubernetes.Interface
	hpas        listersautoscalingv2.HorizontalPodAutoscalerLister
	synced      []cache.InformerSynced
	scales      scale.ScalesGetter
	mapper      meta.RESTMapper
	calc        *replicaCalculator
	history     *history
	queue       workqueue.TypedRateLimitingInterface[string]
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	clock       clock.Clock
	resync      time.Duration
	log         *slog.Logger

	// selectors are the HPAs' last pod selectors, to refuse a pod set
	// that several HPAs would scale.
	mu        sync.Mutex
	selectors map[string]labels.Selector
}

// New builds the controller on factory's informers; client writes HPA
// status and events.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config, log *slog.Logger) *Controller {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Resync <= 0 {
		cfg.Resync = defaultResync
	}
	if cfg.DownscaleWindow <= 0 {
		cfg.DownscaleWindow = defaultDownscaleWindow
	}
	hpas := factory.Autoscaling().V2().HorizontalPodAutoscalers()
	pods := factory.Core().V1().Pods()
	b, rec := controllerutil.NewRecorder("horizontal-pod-autoscaler")
	c := &Controller{
		client: client, hpas: hpas.Lister(),
		synced: []cache.InformerSynced{hpas.Informer().HasSynced, pods.Informer().HasSynced},
		scales: cfg.Scales, mapper: cfg.Mapper,
		calc:        &replicaCalculator{metrics: cfg.Metrics, pods: pods.Lister(), clock: cfg.Clock},
		history:     newHistory(cfg.Clock, cfg.DownscaleWindow),
		queue:       controllerutil.NewQueue("horizontalpodautoscaler"),
		broadcaster: b, recorder: rec, clock: cfg.Clock, resync: cfg.Resync, log: log,
		selectors: map[string]labels.Selector{},
	}
	hpas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, cur any) {
			// Our own status writes must not bring the next sync forward:
			// only a changed spec does.
			if old.(*autoscalingv2.HorizontalPodAutoscaler).Generation != cur.(*autoscalingv2.HorizontalPodAutoscaler).Generation {
				c.enqueue(cur)
			}
		},
		DeleteFunc: c.enqueue,
	})
	// The pod informer is only read (the lister); registering it makes
	// the factory start it.
	pods.Informer()
	return c
}

// NewForConfig builds the controller with clients made from cfg: a scale
// client and a RESTMapper from discovery, and a metrics.k8s.io client.
func NewForConfig(cfg *rest.Config, client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) (*Controller, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	cached := memory.NewMemCacheClient(disc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(disc))
	if err != nil {
		return nil, fmt.Errorf("scale client: %w", err)
	}
	mc, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("metrics client: %w", err)
	}
	return New(client, factory, Config{Scales: scales, Mapper: mapper, Metrics: ResourceMetrics{Client: mc}}, log), nil
}

// Run reconciles HPAs until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.broadcaster, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, workers, c.sync, c.log)
}

func (c *Controller) enqueue(obj any) {
	if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
		c.queue.Add(key)
	}
}

// sync reconciles one HPA and comes back after the resync period whatever
// happened: a failure is retried at the same pace as upstream, not faster.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	hpa, err := c.hpas.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.history.forget(key)
		c.mu.Lock()
		delete(c.selectors, key)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.reconcile(ctx, key, hpa); err != nil {
		c.log.Info("horizontal pod autoscaler sync failed", "hpa", key, "err", err)
	}
	return controllerutil.RequeueAfter(c.resync)
}
