// Package replicaset keeps the number of pods of each ReplicaSet at its
// replicas: it creates pods from the template in slow-start batches,
// deletes the least valuable ones first, adopts matching orphans, and
// reports status.
package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

var gvk = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// burstReplicas caps the pods created or deleted in one sync.
const burstReplicas = 500

// Controller reconciles ReplicaSets, or ReplicationControllers through
// the same logic (see NewForReplicationControllers).
type Controller struct {
	client       kubernetes.Interface
	kind         kind
	podLister    listerscorev1.PodLister
	synced       []cache.InformerSynced
	queue        workqueue.TypedRateLimitingInterface[string]
	expectations *controllerutil.Expectations
	recorder     record.EventRecorder
	events       record.EventBroadcaster
	log          *slog.Logger
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the ReplicaSet controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	rs := factory.Apps().V1().ReplicaSets()
	lister := rs.Lister()
	return newController(client, factory, log, rs.Informer(), kind{
		gvk:       gvk,
		component: "replicaset-controller",
		get:       func(ns, name string) (*appsv1.ReplicaSet, error) { return lister.ReplicaSets(ns).Get(name) },
		list:      func(ns string) ([]*appsv1.ReplicaSet, error) { return lister.ReplicaSets(ns).List(labels.Everything()) },
		live: func(ctx context.Context, ns, name string) (metav1.Object, error) {
			return client.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		writeStatus: func(ctx context.Context, rs *appsv1.ReplicaSet) error {
			_, err := client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
			return err
		},
		eventObject: func(rs *appsv1.ReplicaSet) runtime.Object { return rs },
	})
}

func newController(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger, inf cache.SharedIndexInformer, k kind) *Controller {
	pods := factory.Core().V1().Pods()
	c := &Controller{
		client: client, kind: k, podLister: pods.Lister(), log: log, Clock: clock.RealClock{},
		synced: []cache.InformerSynced{inf.HasSynced, pods.Informer().HasSynced},
		queue:  controllerutil.NewQueue(k.component),
	}
	c.expectations = controllerutil.NewExpectationsWithClock(controllerutil.ClockRef{P: &c.Clock})
	c.events, c.recorder = controllerutil.NewRecorder(k.component)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, o any) { c.enqueue(o) },
		DeleteFunc: func(o any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o); err == nil {
				c.expectations.Delete(key)
				c.queue.Add(key)
			}
		},
	})
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			p := o.(*corev1.Pod)
			if key := c.ownerKey(p); key != "" {
				c.expectations.Observed(key, 1, 0)
				c.queue.Add(key)
			} else {
				c.enqueueMatching(p) // an orphan some set may adopt
			}
		},
		UpdateFunc: func(old, o any) {
			p, prev := o.(*corev1.Pod), old.(*corev1.Pod)
			if key := c.ownerKey(prev); key != "" {
				c.queue.Add(key)
			}
			if key := c.ownerKey(p); key != "" {
				c.queue.Add(key)
				if p.DeletionTimestamp != nil && prev.DeletionTimestamp == nil {
					c.expectations.Observed(key, 0, 1)
				}
			} else {
				c.enqueueMatching(p)
			}
		},
		DeleteFunc: func(o any) {
			p, ok := informerutil.Unwrap(o).(*corev1.Pod)
			if !ok {
				return
			}
			if key := c.ownerKey(p); key != "" {
				if p.DeletionTimestamp == nil {
					c.expectations.Observed(key, 0, 1)
				}
				c.queue.Add(key)
			}
		},
	})
	return c
}

func (c *Controller) enqueue(o any) {
	if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
		c.queue.Add(key)
	}
}

// ownerKey is the key of the ReplicaSet controlling p, if any.
func (c *Controller) ownerKey(p *corev1.Pod) string {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != c.kind.gvk.Kind || ref.APIVersion != c.kind.gvk.GroupVersion().String() {
		return ""
	}
	return p.Namespace + "/" + ref.Name
}

func (c *Controller) enqueueMatching(p *corev1.Pod) {
	if metav1.GetControllerOf(p) != nil {
		return // another controller's: not an orphan to adopt
	}
	sets, err := c.kind.list(p.Namespace)
	if err != nil {
		return
	}
	for _, rs := range sets {
		if sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.enqueue(rs)
		}
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 4, c.sync, c.log)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := c.kind.get(ns, name)
	if apierrors.IsNotFound(err) {
		c.expectations.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil // validation refuses these; nothing sensible to do
	}
	all, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var candidates []*corev1.Pod
	for _, p := range all {
		if controllerutil.IsPodActive(p) {
			candidates = append(candidates, p)
		}
	}
	pods, err := controllerutil.ClaimPods(ctx, c.client, rs, c.kind.gvk, sel, candidates,
		func(ctx context.Context) (metav1.Object, error) { return c.kind.live(ctx, rs.Namespace, rs.Name) })
	if err != nil {
		return err
	}
	var manageErr error
	if c.expectations.Satisfied(key) && rs.DeletionTimestamp == nil {
		manageErr = c.manage(ctx, key, rs, pods)
	}
	if err := c.updateStatus(ctx, rs, pods, manageErr); err != nil {
		return err
	}
	if manageErr == nil && rs.Spec.MinReadySeconds > 0 {
		// Re-check when pods may have become available.
		c.queue.AddAfter(key, time.Duration(rs.Spec.MinReadySeconds)*time.Second)
	}
	return manageErr
}

// manage creates or deletes pods to reach spec.replicas.
func (c *Controller) manage(ctx context.Context, key string, rs *appsv1.ReplicaSet, pods []*corev1.Pod) error {
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	diff := len(pods) - int(want)
	switch {
	case diff < 0:
		n := min(-diff, burstReplicas)
		c.expectations.Expect(key, n, 0)
		created, err := slowStart(n, func() error { return c.createPod(ctx, rs) })
		if skipped := n - created; skipped > 0 {
			c.expectations.Observed(key, skipped, 0)
		}
		return err
	case diff > 0:
		n := min(diff, burstReplicas)
		sort.SliceStable(pods, func(i, j int) bool { return controllerutil.DeletionLess(pods[i], pods[j]) })
		victims := pods[:n]
		c.expectations.Expect(key, 0, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
				if err != nil {
					c.expectations.Observed(key, 0, 1)
					if !apierrors.IsNotFound(err) {
						errs <- err
						c.recorder.Eventf(c.kind.eventObject(rs), corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
					}
					return
				}
				c.recorder.Eventf(c.kind.eventObject(rs), corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
			}()
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	return nil
}

// slowStart runs fn count times in batches of 1, 2, 4, ... and stops at
// the first batch with a failure, so an invalid template costs one call,
// not hundreds. It returns how many calls succeeded.
func slowStart(count int, fn func() error) (int, error) {
	done := 0
	for batch := 1; done < count; batch *= 2 {
		batch = min(batch, count-done)
		var wg sync.WaitGroup
		errs := make(chan error, batch)
		for i := 0; i < batch; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		failed := len(errs)
		done += batch - failed
		if failed > 0 {
			return done, <-errs
		}
	}
	return done, nil
}

func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    rs.Name + "-",
			Namespace:       rs.Namespace,
			Labels:          rs.Spec.Template.Labels,
			Annotations:     rs.Spec.Template.Annotations,
			Finalizers:      rs.Spec.Template.Finalizers,
			OwnerReferences: []metav1.OwnerReference{controllerutil.ControllerRef(rs, c.kind.gvk)},
		},
		Spec: *rs.Spec.Template.Spec.DeepCopy(),
	}
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			c.recorder.Eventf(c.kind.eventObject(rs), corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		}
		return err
	}
	c.recorder.Eventf(c.kind.eventObject(rs), corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
	return nil
}

func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, pods []*corev1.Pod, manageErr error) error {
	now := c.Clock.Now()
	st := appsv1.ReplicaSetStatus{Replicas: int32(len(pods)), ObservedGeneration: rs.Generation}
	tmplSel := labels.SelectorFromSet(rs.Spec.Template.Labels)
	for _, p := range pods {
		if tmplSel.Matches(labels.Set(p.Labels)) {
			st.FullyLabeledReplicas++
		}
		if controllerutil.IsPodReady(p) {
			st.ReadyReplicas++
			if controllerutil.IsPodAvailable(p, rs.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
	}
	st.Conditions = filterConditions(rs.Status.Conditions, appsv1.ReplicaSetReplicaFailure)
	if manageErr != nil && len(pods) < int(ptrOr(rs.Spec.Replicas, 1)) {
		reason := "FailedCreate"
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: reason,
			Message: manageErr.Error(), LastTransitionTime: metav1.NewTime(now),
		})
	}
	if statusEqual(rs.Status, st) {
		return nil
	}
	next := rs.DeepCopy()
	next.Status = st
	err := c.kind.writeStatus(ctx, next)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update status of %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

func statusEqual(a, b appsv1.ReplicaSetStatus) bool {
	if a.Replicas != b.Replicas || a.FullyLabeledReplicas != b.FullyLabeledReplicas || a.ReadyReplicas != b.ReadyReplicas ||
		a.AvailableReplicas != b.AvailableReplicas || a.ObservedGeneration != b.ObservedGeneration || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i].Type != b.Conditions[i].Type || a.Conditions[i].Status != b.Conditions[i].Status || a.Conditions[i].Message != b.Conditions[i].Message {
			return false
		}
	}
	return true
}

func filterConditions(cs []appsv1.ReplicaSetCondition, drop appsv1.ReplicaSetConditionType) []appsv1.ReplicaSetCondition {
	var out []appsv1.ReplicaSetCondition
	for _, c := range cs {
		if c.Type != drop {
			out = append(out, c)
		}
	}
	return out
}

func ptrOr(p *int32, d int32) int32 {
	if p == nil {
		return d
	}
	return *p
}
