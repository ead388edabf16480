// Package disruption keeps PodDisruptionBudget status current: how many
// selected pods are expected, healthy and needed healthy, how many
// disruptions the budget allows, the DisruptionAllowed condition, and the
// expiry of disruptedPods entries the eviction path leaves behind.
package disruption

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listerspolicyv1 "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// Controller computes PodDisruptionBudget status.
type Controller struct {
	client      kubernetes.Interface
	pdbs        listerspolicyv1.PodDisruptionBudgetLister
	pods        listerscorev1.PodLister
	finders     finders
	synced      []cache.InformerSynced
	queue       workqueue.TypedRateLimitingInterface[string]
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	clock       clock.Clock
	log         *slog.Logger
}

// New builds the controller on factory's informers; client writes status
// and events.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	pdbs := factory.Policy().V1().PodDisruptionBudgets()
	pods := factory.Core().V1().Pods()
	rcs := factory.Core().V1().ReplicationControllers()
	rss := factory.Apps().V1().ReplicaSets()
	ds := factory.Apps().V1().Deployments()
	sss := factory.Apps().V1().StatefulSets()
	b, rec := controllerutil.NewRecorder("controllermanager")
	c := &Controller{
		client: client, pdbs: pdbs.Lister(), pods: pods.Lister(),
		finders: finders{rcs: rcs.Lister(), replicaSets: rss.Lister(), deployments: ds.Lister(), statefulSets: sss.Lister()},
		synced: []cache.InformerSynced{pdbs.Informer().HasSynced, pods.Informer().HasSynced, rcs.Informer().HasSynced,
			rss.Informer().HasSynced, ds.Informer().HasSynced, sss.Informer().HasSynced},
		queue:       controllerutil.NewQueue("disruption"),
		broadcaster: b, recorder: rec, clock: clock.RealClock{}, log: log,
	}
	pdbs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	})
	pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged,
		UpdateFunc: func(old, cur any) {
			// Both label sets: a pod relabelled out of a budget changes it.
			c.podChanged(old)
			c.podChanged(cur)
		},
		DeleteFunc: c.podChanged,
	})
	return c
}

// UseScaleSubresource lets the controller count pods of controllers other
// than the built-in workloads through their scale subresource, as
// upstream does for custom resources.
func (c *Controller) UseScaleSubresource(cfg *rest.Config, disc discovery.DiscoveryInterface) error {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	client, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(disc))
	if err != nil {
		return fmt.Errorf("scale client: %w", err)
	}
	c.finders.scales = &scaleSubresource{mapper: mapper, client: client}
	return nil
}

// Run syncs budgets until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.broadcaster, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		c.queue.Add(key)
	}
}

func (c *Controller) podChanged(obj any) {
	obj = informerutil.Unwrap(obj)
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	// The lister errors only when no budget selects the pod.
	pdbs, _ := c.pdbs.GetPodPodDisruptionBudgets(p)
	for _, pdb := range pdbs {
		c.enqueue(pdb)
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pdb, err := c.pdbs.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	recheck, err := c.trySync(ctx, pdb)
	switch {
	case apierrors.IsConflict(err):
		return err // a newer budget is on its way; retry without failing safe
	case err != nil:
		c.log.Warn("PodDisruptionBudget sync failed", "pdb", key, "err", err)
		return c.writeStatus(ctx, pdb, failedStatus(pdb, err))
	case !recheck.IsZero():
		// Look again when the earliest disruptedPods entry expires.
		return controllerutil.RequeueAfter(max(recheck.Sub(c.clock.Now()), time.Second))
	}
	return nil
}

// trySync writes the budget's status; recheck is when it must be computed
// again even if nothing changes.
func (c *Controller) trySync(ctx context.Context, pdb *policyv1.PodDisruptionBudget) (recheck time.Time, err error) {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "NoPods", "Failed to get pods: %v", err)
		return time.Time{}, fmt.Errorf("selector: %w", err)
	}
	pods, err := c.pods.Pods(pdb.Namespace).List(sel)
	if err != nil {
		return time.Time{}, err
	}
	if len(pods) == 0 {
		c.recorder.Event(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	expected, desired, unmanaged, err := expectedAndDesired(ctx, pdb, pods, c.finders.find)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Failed to calculate the number of expected pods: %v", err)
		return time.Time{}, err
	}
	if len(unmanaged) > 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "UnmanagedPods",
			"Pods selected by this PodDisruptionBudget have no controller, so its status cannot be computed correctly: %s. "+
				"Set .spec.minAvailable to an integer to count them.", strings.Join(unmanaged, ", "))
	}
	now := c.clock.Now()
	disrupted, expired, recheck := liveDisruptedPods(pdb, pods, now)
	for _, name := range expired {
		c.log.Info("pod was expected to be deleted by an eviction but was not", "pdb", pdb.Namespace+"/"+pdb.Name, "pod", name)
	}
	st := newStatus(pdb, countHealthy(pods, disrupted, now), desired, expected, disrupted)
	if upToDate(pdb, st) {
		return recheck, nil
	}
	return recheck, c.writeStatus(ctx, pdb, st)
}

// upToDate compares what the controller owns, ignoring condition times.
func upToDate(pdb *policyv1.PodDisruptionBudget, st policyv1.PodDisruptionBudgetStatus) bool {
	cur := pdb.Status
	if cur.ObservedGeneration != st.ObservedGeneration || cur.CurrentHealthy != st.CurrentHealthy ||
		cur.DesiredHealthy != st.DesiredHealthy || cur.ExpectedPods != st.ExpectedPods ||
		cur.DisruptionsAllowed != st.DisruptionsAllowed ||
		// Semantic equality holds a nil map equal to an empty one.
		!equality.Semantic.DeepEqual(cur.DisruptedPods, st.DisruptedPods) {
		return false
	}
	want := findCondition(st.Conditions)
	got := findCondition(cur.Conditions)
	return got != nil && got.Status == want.Status && got.Reason == want.Reason &&
		got.ObservedGeneration == want.ObservedGeneration && got.Message == want.Message
}

func findCondition(conds []metav1.Condition) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == policyv1.DisruptionAllowedCondition {
			return &conds[i]
		}
	}
	return nil
}

func (c *Controller) writeStatus(ctx context.Context, pdb *policyv1.PodDisruptionBudget, st policyv1.PodDisruptionBudgetStatus) error {
	next := pdb.DeepCopy()
	next.Status = st
	if _, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of PodDisruptionBudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
	}
	return nil
}
