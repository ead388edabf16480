// Package namespace finishes the deletion of namespaces: it deletes every
// namespaced object in a Terminating namespace, pods before anything else,
// and, once none is left,
// removes the "kubernetes" finalizer so the API server drops the namespace.
// Each pass records its outcome in upstream's deletion conditions
// (conditions.go), so users see what holds a namespace in Terminating.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// Controller empties and finalizes Terminating namespaces.
type Controller struct {
	client  kubernetes.Interface
	dynamic dynamic.Interface
	lister  listerscorev1.NamespaceLister
	synced  cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
	log     *slog.Logger
	// Clock stamps the deletion conditions; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the controller on factory's namespace informer.
func New(client kubernetes.Interface, dyn dynamic.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	inf := factory.Core().V1().Namespaces()
	c := &Controller{
		client: client, dynamic: dyn, lister: inf.Lister(), synced: inf.Informer().HasSynced, log: log, Clock: clock.RealClock{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace"}),
	}
	enqueue := func(o any) {
		if ns, ok := o.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			c.queue.Add(ns.Name)
		}
	}
	_, _ = inf.Informer().AddEventHandler(informerutil.OnAddOrUpdate(enqueue))
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.RunSynced(ctx, []cache.InformerSynced{c.synced}, c.queue, 2, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	report := newDeletionReport()
	c.deleteAllContent(ctx, name, c.namespacedResources(report), report)
	if err := c.updateConditions(ctx, name, report); err != nil {
		return err
	}
	if report.discoveryErr != nil || len(report.parseErrs) > 0 || len(report.deleteErrs) > 0 {
		return fmt.Errorf("delete content of namespace %s: %w", name,
			errors.Join(append(append([]error{report.discoveryErr}, report.parseErrs...), report.deleteErrs...)...))
	}
	for _, n := range report.remaining {
		if n > 0 {
			// Objects are still terminating: look again shortly, without
			// growing the backoff as for errors.
			return controllerutil.RequeueAfter(time.Second)
		}
	}
	// Empty: drop our finalizer through the finalize subresource.
	fresh, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	fresh.Spec.Finalizers = slices.DeleteFunc(fresh.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	_, err = c.client.CoreV1().Namespaces().Finalize(ctx, fresh, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// namespacedResources lists every namespaced resource the server offers
// that can be listed and deleted; it records discovery and parsing failures
// in report and goes on with what it could find.
func (c *Controller) namespacedResources(report *deletionReport) []schema.GroupVersionResource {
	lists, err := c.client.Discovery().ServerPreferredNamespacedResources()
	if err != nil {
		report.discoveryErr = err
	}
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			report.parseErrs = append(report.parseErrs, err)
			continue
		}
		for _, r := range l.APIResources {
			if slices.Contains(r.Verbs, "list") && (slices.Contains(r.Verbs, "deletecollection") || slices.Contains(r.Verbs, "delete")) {
				out = append(out, gv.WithResource(r.Name))
			}
		}
	}
	return out
}

// podsGVR names pods, which a namespace's deletion removes first.
var podsGVR = corev1.SchemeGroupVersion.WithResource("pods")

// deleteAllContent deletes the pods of namespace ns and, only once none is
// left, every other object, as upstream's OrderedNamespaceDeletion does: a
// pod must not outlive the secrets, config maps and service accounts it
// runs with, nor the policies that restrict it.
func (c *Controller) deleteAllContent(ctx context.Context, ns string, gvrs []schema.GroupVersionResource, report *deletionReport) {
	if slices.Contains(gvrs, podsGVR) {
		c.deleteContent(ctx, ns, podsGVR, report)
		if report.remaining[podsGVR] > 0 {
			return
		}
	}
	for _, gvr := range gvrs {
		if gvr != podsGVR {
			c.deleteContent(ctx, ns, gvr, report)
		}
	}
}

// deleteContent deletes every object of gvr in namespace ns and records in
// report what is left and which finalizers hold it.
func (c *Controller) deleteContent(ctx context.Context, ns string, gvr schema.GroupVersionResource, report *deletionReport) {
	ri := c.dynamic.Resource(gvr).Namespace(ns)
	fail := func(err error) {
		report.deleteErrs = append(report.deleteErrs, fmt.Errorf("failed to delete %s in %s: %w", gvr.String(), ns, err))
	}
	ignorable := func(err error) bool { return apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) }
	err := ri.DeleteCollection(ctx, backgroundDeletion(), metav1.ListOptions{})
	if apierrors.IsMethodNotSupported(err) {
		err = c.deleteEach(ctx, ri)
	}
	if err != nil && !ignorable(err) {
		fail(err)
		return
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		if !ignorable(err) {
			fail(err)
		}
		return
	}
	if len(list.Items) == 0 {
		return
	}
	report.remaining[gvr] += len(list.Items)
	waiting := false
	for _, it := range list.Items {
		for _, f := range it.GetFinalizers() {
			report.finalizerLeft[f]++
			waiting = true
		}
		if it.GetDeletionTimestamp() != nil && it.GetDeletionGracePeriodSeconds() != nil && *it.GetDeletionGracePeriodSeconds() > 0 {
			waiting = true // graceful termination still under way
		}
	}
	if !waiting {
		// Nothing explains why these objects are still there.
		report.deleteErrs = append(report.deleteErrs,
			fmt.Errorf("unexpected items still remain in namespace: %s for gvr: %v", ns, gvr))
	}
}

// deleteEach deletes objects one by one, for resources without
// deletecollection.
func (c *Controller) deleteEach(ctx context.Context, ri dynamic.ResourceInterface) error {
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, it := range list.Items {
		if err := ri.Delete(ctx, it.GetName(), backgroundDeletion()); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// updateConditions records the pass's outcome in the namespace's status.
func (c *Controller) updateConditions(ctx context.Context, name string, report *deletionReport) error {
	ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if !report.applyConditions(&ns.Status, metav1.NewTime(c.Clock.Now())) {
		return nil
	}
	if _, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update conditions of namespace %s: %w", name, err)
	}
	return nil
}

// backgroundDeletion deletes a namespace's content in the background, as
// upstream's namespace controller does: kinds that orphan their dependents
// by default (ReplicationControllers, Jobs) must not leave pods behind.
func backgroundDeletion() metav1.DeleteOptions {
	bg := metav1.DeletePropagationBackground
	return metav1.DeleteOptions{PropagationPolicy: &bg}
}
