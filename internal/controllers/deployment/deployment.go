// Package deployment rolls Deployments out through ReplicaSets: one
// ReplicaSet per pod template (named by a hash of it), scaled up and down
// under the RollingUpdate or Recreate strategy, with revision annotations
// that kubectl rollout history/undo read, and the Progressing and
// Available conditions that kubectl rollout status waits on.
package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

// Annotations and labels shared with kubectl.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	ChangeCauseAnnotation     = "kubernetes.io/change-cause"
	PodTemplateHashLabel      = appsv1.DefaultDeploymentUniqueLabelKey
)

var (
	deploymentKind = appsv1.SchemeGroupVersion.WithKind("Deployment")
)

// Controller reconciles Deployments.
type Controller struct {
	client   kubernetes.Interface
	dLister  listersappsv1.DeploymentLister
	rsLister listersappsv1.ReplicaSetLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	events   record.EventBroadcaster
	log      *slog.Logger
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	d := factory.Apps().V1().Deployments()
	rs := factory.Apps().V1().ReplicaSets()
	c := &Controller{
		client: client, dLister: d.Lister(), rsLister: rs.Lister(), log: log, Clock: clock.RealClock{},
		synced: []cache.InformerSynced{d.Informer().HasSynced, rs.Informer().HasSynced},
		queue:  controllerutil.NewQueue("deployment"),
	}
	c.events, c.recorder = controllerutil.NewRecorder("deployment-controller")
	enqueue := controllerutil.EnqueueKey(c.queue)
	_, _ = d.Informer().AddEventHandler(informerutil.OnAnyChange(enqueue))
	owner := func(o any) {
		r, ok := o.(*appsv1.ReplicaSet)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(r); ref != nil && ref.Kind == deploymentKind.Kind {
			c.queue.Add(r.Namespace + "/" + ref.Name)
			return
		}
		// An orphan: any deployment selecting it may adopt it.
		ds, _ := c.dLister.Deployments(r.Namespace).List(labels.Everything())
		for _, d := range ds {
			if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(r.Labels)) {
				enqueue(d)
			}
		}
	}
	_, _ = rs.Informer().AddEventHandler(informerutil.OnAnyChange(owner))
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 4, c.sync, c.log)
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	d, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	d = d.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return nil
	}
	all, err := c.claimReplicaSets(ctx, d, sel)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.updateStatus(ctx, d, findNew(d, all), all, false)
	}
	newRS := findNew(d, all)
	if d.Spec.Paused {
		if newRS != nil {
			if err := c.syncRevisions(ctx, d, newRS, all); err != nil {
				return err
			}
		}
		if newRS != nil && len(activeOld(all, newRS)) == 0 {
			if err := c.scale(ctx, d, newRS, replicasOf(d.Spec.Replicas)); err != nil {
				return err
			}
		}
		return c.updateStatus(ctx, d, newRS, all, false)
	}
	if newRS == nil {
		if newRS, err = c.createNew(ctx, d, all); err != nil {
			return err
		}
		all = append(all, newRS)
	}
	if err := c.syncRevisions(ctx, d, newRS, all); err != nil {
		return err
	}
	old := oldSets(all, newRS)
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		err = c.recreate(ctx, d, newRS, old)
	default:
		err = c.rollingUpdate(ctx, d, newRS, old)
	}
	if err != nil {
		return err
	}
	complete := newRS.Spec.Replicas != nil && *newRS.Spec.Replicas == replicasOf(d.Spec.Replicas) &&
		newRS.Status.AvailableReplicas == replicasOf(d.Spec.Replicas) && len(activeOld(all, newRS)) == 0
	if complete {
		if err := c.cleanupHistory(ctx, d, old); err != nil {
			return err
		}
	}
	return c.updateStatus(ctx, d, newRS, all, true)
}

// claimReplicaSets adopts orphaned sets the deployment selects and
// releases owned ones it no longer selects. It returns private copies:
// the sync updates them as it scales.
func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	sets, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	canAdopt := controllerutil.AdoptionCheck(d, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
	})
	var out []*appsv1.ReplicaSet
	for _, rs := range sets {
		ref := metav1.GetControllerOf(rs)
		matches := sel.Matches(labels.Set(rs.Labels))
		switch {
		case ref != nil && ref.UID != d.UID:
		case ref != nil && matches:
			out = append(out, rs.DeepCopy())
		case ref != nil:
			if err := c.patchOwners(ctx, rs, nil, d.UID); err != nil {
				return nil, err
			}
		case matches && d.DeletionTimestamp == nil && rs.DeletionTimestamp == nil:
			if err := canAdopt(ctx); err != nil {
				return nil, fmt.Errorf("adopt replicaset %s: %w", rs.Name, err)
			}
			cr := controllerutil.ControllerRef(d, deploymentKind)
			if err := c.patchOwners(ctx, rs, &cr, ""); err != nil {
				return nil, err
			}
			out = append(out, rs.DeepCopy())
		}
	}
	return out, nil
}

func (c *Controller) patchOwners(ctx context.Context, rs *appsv1.ReplicaSet, add *metav1.OwnerReference, remove types.UID) error {
	owners := []metav1.OwnerReference{}
	for _, o := range rs.OwnerReferences {
		if o.UID != remove {
			owners = append(owners, o)
		}
	}
	if add != nil {
		owners = append(owners, *add)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": rs.UID, "ownerReferences": owners}})
	_, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// templateOf returns a set's pod template without the hash label, for
// comparison with the deployment's.
func templateOf(rs *appsv1.ReplicaSet) corev1.PodTemplateSpec {
	t := *rs.Spec.Template.DeepCopy()
	delete(t.Labels, PodTemplateHashLabel)
	if len(t.Labels) == 0 {
		t.Labels = nil
	}
	return t
}

// findNew returns the set running the deployment's current template.
func findNew(d *appsv1.Deployment, all []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sort.Slice(all, func(i, j int) bool { return all[i].CreationTimestamp.Before(&all[j].CreationTimestamp) })
	for _, rs := range all {
		if equality.Semantic.DeepEqual(templateOf(rs), d.Spec.Template) {
			return rs
		}
	}
	return nil
}

func oldSets(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		if newRS == nil || rs.UID != newRS.UID {
			out = append(out, rs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp) })
	return out
}

func activeOld(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range oldSets(all, newRS) {
		if replicasOf(rs.Spec.Replicas) > 0 || rs.Status.Replicas > 0 {
			out = append(out, rs)
		}
	}
	return out
}

func revisionOf(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations[RevisionAnnotation], 10, 64)
	return n
}

func maxRevision(sets []*appsv1.ReplicaSet) int64 {
	var hi int64
	for _, rs := range sets {
		hi = max(hi, revisionOf(rs))
	}
	return hi
}

func (c *Controller) createNew(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	hash := controllerutil.TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	tmpl := *d.Spec.Template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[PodTemplateHashLabel] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[PodTemplateHashLabel] = hash
	replicas := int32(0)
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		replicas = newReplicaCount(d, all, nil)
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: tmpl.Labels,
			OwnerReferences: []metav1.OwnerReference{controllerutil.ControllerRef(d, deploymentKind)},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: tmpl},
	}
	copyAnnotations(d, rs)
	setRevision(rs, maxRevision(all)+1)
	setReplicaAnnotations(d, rs)
	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// A set of that name runs another template: count the collision
		// and try another name next time.
		n := int32(1)
		if d.Status.CollisionCount != nil {
			n = *d.Status.CollisionCount + 1
		}
		d.Status.CollisionCount = &n
		if _, uerr := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); uerr != nil {
			return nil, uerr
		}
		return nil, fmt.Errorf("replica set name %s collided; retrying", rs.Name)
	}
	if err != nil {
		return nil, err
	}
	c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s from 0 to %d", created.Name, replicas)
	return created, nil
}

// syncRevisions keeps the current set's annotations and the deployment's
// revision annotation in step with the rollout history.
func (c *Controller) syncRevisions(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, all []*appsv1.ReplicaSet) error {
	if err := c.syncNewAnnotations(ctx, d, newRS, all); err != nil {
		return err
	}
	return c.syncDeploymentRevision(ctx, d, newRS)
}

// resolve turns maxSurge/maxUnavailable into a count of pods.
func resolve(v *intstr.IntOrString, total int32, roundUp bool) int32 {
	if v == nil {
		return 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, int(total), roundUp)
	if err != nil {
		return 0
	}
	return int32(n)
}

func maxSurge(d *appsv1.Deployment) int32 {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil {
		return 0
	}
	return resolve(d.Spec.Strategy.RollingUpdate.MaxSurge, replicasOf(d.Spec.Replicas), true)
}

func maxUnavailable(d *appsv1.Deployment) int32 {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil {
		return 0
	}
	u := resolve(d.Spec.Strategy.RollingUpdate.MaxUnavailable, replicasOf(d.Spec.Replicas), false)
	if u == 0 && maxSurge(d) == 0 {
		u = 1 // both zero would never progress
	}
	return min(u, replicasOf(d.Spec.Replicas))
}

func specTotal(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		n += replicasOf(rs.Spec.Replicas)
	}
	return n
}

func availableTotal(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		n += rs.Status.AvailableReplicas
	}
	return n
}

// newReplicaCount is how far the new set may grow without exceeding
// replicas + maxSurge pods in all.
func newReplicaCount(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := replicasOf(d.Spec.Replicas)
	cur := int32(0)
	if newRS != nil {
		cur = replicasOf(newRS.Spec.Replicas)
	}
	if cur >= want {
		return want
	}
	room := want + maxSurge(d) - specTotal(all)
	if room <= 0 {
		return cur
	}
	return cur + min(room, want-cur)
}

func (c *Controller) rollingUpdate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	all := append([]*appsv1.ReplicaSet{newRS}, old...)
	if active := activeSets(all); len(active) > 1 && scalingEvent(d, active) {
		return c.scaleProportionally(ctx, d, active)
	}
	if n := newReplicaCount(d, all, newRS); n != replicasOf(newRS.Spec.Replicas) {
		return c.scale(ctx, d, newRS, n) // the next sync sees the new counts
	}
	// Scale old sets down as far as availability allows: first their
	// unavailable pods, then available ones.
	minAvailable := replicasOf(d.Spec.Replicas) - maxUnavailable(d)
	newUnavailable := replicasOf(newRS.Spec.Replicas) - newRS.Status.AvailableReplicas
	budget := specTotal(all) - minAvailable - newUnavailable
	for _, rs := range old {
		if budget <= 0 {
			break
		}
		unhealthy := replicasOf(rs.Spec.Replicas) - rs.Status.AvailableReplicas
		if n := min(unhealthy, budget); n > 0 {
			if err := c.scale(ctx, d, rs, replicasOf(rs.Spec.Replicas)-n); err != nil {
				return err
			}
			budget -= n
		}
	}
	budget = min(budget, availableTotal(all)-minAvailable)
	for _, rs := range old {
		if budget <= 0 {
			break
		}
		if n := min(replicasOf(rs.Spec.Replicas), budget); n > 0 {
			if err := c.scale(ctx, d, rs, replicasOf(rs.Spec.Replicas)-n); err != nil {
				return err
			}
			budget -= n
		}
	}
	// Outside a rollout, a change of replicas lands on the new set.
	if len(old) == 0 && replicasOf(newRS.Spec.Replicas) > replicasOf(d.Spec.Replicas) {
		return c.scale(ctx, d, newRS, replicasOf(d.Spec.Replicas))
	}
	return nil
}

func (c *Controller) recreate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	running := false
	for _, rs := range old {
		if replicasOf(rs.Spec.Replicas) > 0 {
			if err := c.scale(ctx, d, rs, 0); err != nil {
				return err
			}
		}
		running = running || rs.Status.Replicas > 0
	}
	if running {
		return nil // old pods must be gone before new ones start
	}
	return c.scale(ctx, d, newRS, replicasOf(d.Spec.Replicas))
}

// scale sets a set's replicas and the annotations recording the
// deployment's size at the time.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, n int32) error {
	from := replicasOf(rs.Spec.Replicas)
	desired := strconv.Itoa(int(replicasOf(d.Spec.Replicas)))
	if from == n && rs.Annotations[DesiredReplicasAnnotation] == desired {
		return nil
	}
	next := rs.DeepCopy()
	next.Spec.Replicas = &n
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	next.Annotations[DesiredReplicasAnnotation] = desired
	next.Annotations[MaxReplicasAnnotation] = strconv.Itoa(int(replicasOf(d.Spec.Replicas) + maxSurge(d)))
	updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*rs = *updated
	if from != n {
		verb := "up"
		if n < from {
			verb = "down"
		}
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", verb, rs.Name, from, n)
	}
	return nil
}

// cleanupHistory deletes the oldest idle sets beyond revisionHistoryLimit.
func (c *Controller) cleanupHistory(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	limit := int32(10)
	if d.Spec.RevisionHistoryLimit != nil {
		limit = *d.Spec.RevisionHistoryLimit
	}
	var idle []*appsv1.ReplicaSet
	for _, rs := range old {
		if replicasOf(rs.Spec.Replicas) == 0 && rs.Status.Replicas == 0 && rs.DeletionTimestamp == nil {
			idle = append(idle, rs)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return revisionOf(idle[i]) < revisionOf(idle[j]) })
	for i := 0; i < len(idle)-int(limit); i++ {
		err := c.client.AppsV1().ReplicaSets(d.Namespace).Delete(ctx, idle[i].Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &idle[i].UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func activeSets(all []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		if replicasOf(rs.Spec.Replicas) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

// scalingEvent reports whether the deployment was resized since its sets
// were last sized (their desired-replicas annotation says for what size).
func scalingEvent(d *appsv1.Deployment, active []*appsv1.ReplicaSet) bool {
	want := strconv.Itoa(int(replicasOf(d.Spec.Replicas)))
	for _, rs := range active {
		if v, ok := rs.Annotations[DesiredReplicasAnnotation]; ok && v != want {
			return true
		}
	}
	return false
}

// scaleProportionally spreads a resize during a rollout over the active
// sets in proportion to their sizes, so that neither the old nor the new
// template suddenly dominates; the rounding leftover goes to the newest.
func (c *Controller) scaleProportionally(ctx context.Context, d *appsv1.Deployment, active []*appsv1.ReplicaSet) error {
	total := specTotal(active)
	allowed := replicasOf(d.Spec.Replicas) + maxSurge(d)
	diff := allowed - total
	if diff == 0 || total == 0 {
		for _, rs := range active { // only the annotations are stale
			if err := c.scale(ctx, d, rs, replicasOf(rs.Spec.Replicas)); err != nil {
				return err
			}
		}
		return nil
	}
	sort.Slice(active, func(i, j int) bool { return active[j].CreationTimestamp.Before(&active[i].CreationTimestamp) }) // newest first
	sizes := make([]int32, len(active))
	var given int32
	for i, rs := range active {
		share := int32(int64(replicasOf(rs.Spec.Replicas)) * int64(diff) / int64(total))
		sizes[i] = max(replicasOf(rs.Spec.Replicas)+share, 0)
		given += sizes[i] - replicasOf(rs.Spec.Replicas)
	}
	sizes[0] = max(sizes[0]+diff-given, 0)
	for i, rs := range active {
		if err := c.scale(ctx, d, rs, sizes[i]); err != nil {
			return err
		}
	}
	return nil
}
