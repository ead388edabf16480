// Package statefulset runs StatefulSets: pods named <set>-<ordinal> with a
// stable hostname and subdomain, created in order (OrderedReady waits for
// each to be Running and Ready) or all at once (Parallel), removed from
// the highest ordinal down; volumeClaimTemplates become PVCs named
// <template>-<set>-<ordinal> that outlive their pods; RollingUpdate
// replaces pods from the highest ordinal down to the partition.
package statefulset

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
)

var gvk = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Labels set on stateful pods, as upstream.
const (
	PodNameLabel  = appsv1.StatefulSetPodNameLabel
	PodIndexLabel = appsv1.PodIndexLabel
	RevisionLabel = appsv1.ControllerRevisionHashLabelKey
)

// Controller reconciles StatefulSets.
type Controller struct {
	client    kubernetes.Interface
	sets      listersappsv1.StatefulSetLister
	pods      listerscorev1.PodLister
	claims    listerscorev1.PersistentVolumeClaimLister
	revisions listersappsv1.ControllerRevisionLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	recorder  record.EventRecorder
	events    record.EventBroadcaster
	log       *slog.Logger
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	sets := factory.Apps().V1().StatefulSets()
	pods := factory.Core().V1().Pods()
	pvcs := factory.Core().V1().PersistentVolumeClaims()
	revs := factory.Apps().V1().ControllerRevisions()
	c := &Controller{
		client: client, sets: sets.Lister(), pods: pods.Lister(), claims: pvcs.Lister(), revisions: revs.Lister(), log: log, Clock: clock.RealClock{},
		synced: []cache.InformerSynced{sets.Informer().HasSynced, pods.Informer().HasSynced, pvcs.Informer().HasSynced, revs.Informer().HasSynced},
		queue:  controllerutil.NewQueue("statefulset"),
	}
	c.events, c.recorder = controllerutil.NewRecorder("statefulset-controller")
	_, _ = sets.Informer().AddEventHandler(informerutil.OnAddOrUpdate(controllerutil.EnqueueKey(c.queue)))
	_, _ = pods.Informer().AddEventHandler(informerutil.OnAnyChange(controllerutil.EnqueueController(c.queue, gvk.GroupKind())))
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

func ordinalOf(set *appsv1.StatefulSet, p *corev1.Pod) (int, bool) {
	suffix, ok := strings.CutPrefix(p.Name, set.Name+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(suffix)
	return n, err == nil && n >= 0
}

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && controllerutil.IsPodReady(p)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.sets.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	set = set.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || sel.Empty() || set.DeletionTimestamp != nil {
		return nil
	}
	updateRev := controllerutil.TemplateHash(&set.Spec.Template, nil)
	if err := controllerutil.EnsureRevision(ctx, c.client, c.revisions, set, gvk, set.Spec.Template, updateRev); err != nil {
		return err
	}
	nsPods, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	owned, err := controllerutil.ClaimPods(ctx, c.client, set, gvk, sel, nsPods, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
	})
	if err != nil {
		return err
	}
	replicas := 1
	if set.Spec.Replicas != nil {
		replicas = int(*set.Spec.Replicas)
	}
	byOrdinal := map[int]*corev1.Pod{}
	var condemned []*corev1.Pod // ordinals at or beyond replicas, highest first
	for _, p := range owned {
		i, ok := ordinalOf(set, p)
		if !ok {
			continue
		}
		if i >= replicas {
			condemned = append(condemned, p)
			continue
		}
		byOrdinal[i] = p
	}
	ordered := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	err = c.reconcilePods(ctx, set, updateRev, replicas, byOrdinal, condemned, ordered)
	if serr := c.updateStatus(ctx, set, updateRev, owned, replicas); serr != nil && err == nil {
		err = serr
	}
	return err
}

func (c *Controller) reconcilePods(ctx context.Context, set *appsv1.StatefulSet, rev string, replicas int,
	byOrdinal map[int]*corev1.Pod, condemned []*corev1.Pod, ordered bool) error {
	// Create or replace missing and failed pods, lowest ordinal first.
	for i := 0; i < replicas; i++ {
		p := byOrdinal[i]
		switch {
		case p == nil:
			if err := c.createPod(ctx, set, rev, i); err != nil {
				return err
			}
			if ordered {
				return nil // one at a time: wait for it to be ready
			}
			continue
		case p.Status.Phase == corev1.PodFailed && p.DeletionTimestamp == nil:
			if err := c.deletePod(ctx, set, p); err != nil {
				return err
			}
			if ordered {
				return nil
			}
			continue
		}
		if ordered && (p.DeletionTimestamp != nil || !runningAndReady(p)) {
			return nil // the next ordinal waits for this one
		}
	}
	// Scale down from the highest ordinal. OrderedReady halts at an
	// unhealthy pod unless it is the lowest unhealthy one, as upstream: a
	// scale-down never removes a pod while one below it is still broken.
	sortByOrdinalDesc(set, condemned)
	var firstUnhealthy *corev1.Pod
	for i := len(condemned) - 1; i >= 0; i-- {
		if !runningAndReady(condemned[i]) {
			firstUnhealthy = condemned[i]
			break
		}
	}
	for _, p := range condemned {
		if ordered && p.DeletionTimestamp == nil && !runningAndReady(p) && p != firstUnhealthy {
			return nil
		}
		if p.DeletionTimestamp == nil {
			if err := c.deletePod(ctx, set, p); err != nil {
				return err
			}
		}
		if ordered {
			return nil
		}
	}
	// Rolling update, highest ordinal first, down to the partition.
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	for i := replicas - 1; i >= partitionOf(set); i-- {
		p := byOrdinal[i]
		if p == nil || p.DeletionTimestamp != nil {
			return nil
		}
		if p.Labels[RevisionLabel] != rev {
			return c.deletePod(ctx, set, p) // recreated at the new revision
		}
		if !runningAndReady(p) {
			return nil
		}
	}
	return nil
}

// partitionOf is the ordinal below which a rolling update keeps pods at
// the current revision (0 for other strategies).
func partitionOf(set *appsv1.StatefulSet) int {
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return 0
	}
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return int(*ru.Partition)
	}
	return 0
}

func sortByOrdinalDesc(set *appsv1.StatefulSet, pods []*corev1.Pod) {
	for i := 1; i < len(pods); i++ {
		for j := i; j > 0; j-- {
			a, _ := ordinalOf(set, pods[j-1])
			b, _ := ordinalOf(set, pods[j])
			if a < b {
				pods[j-1], pods[j] = pods[j], pods[j-1]
			}
		}
	}
}

// createPod creates the pod of an ordinal at the revision it belongs to:
// below a rolling update's partition that is the current revision, as
// upstream, so a pod deleted there comes back as it was; elsewhere the
// update revision rev.
func (c *Controller) createPod(ctx context.Context, set *appsv1.StatefulSet, rev string, ordinal int) error {
	t := set.Spec.Template.DeepCopy()
	if cur := set.Status.CurrentRevision; cur != "" && cur != rev && ordinal < partitionOf(set) {
		tmpl, err := controllerutil.RevisionTemplate(c.revisions, set, cur)
		if err != nil {
			return err
		}
		if tmpl != nil {
			t, rev = tmpl, cur
		}
	}
	name := fmt.Sprintf("%s-%d", set.Name, ordinal)
	lbls := map[string]string{PodNameLabel: name, PodIndexLabel: strconv.Itoa(ordinal), RevisionLabel: rev}
	for k, v := range t.Labels {
		lbls[k] = v
	}
	spec := t.Spec
	spec.Hostname = name
	spec.Subdomain = set.Spec.ServiceName
	for _, tmpl := range set.Spec.VolumeClaimTemplates {
		claim := fmt.Sprintf("%s-%s", tmpl.Name, name)
		if err := c.ensureClaim(ctx, set, tmpl, claim); err != nil {
			return err
		}
		vol := corev1.Volume{Name: tmpl.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}}
		replaced := false
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == tmpl.Name {
				spec.Volumes[i], replaced = vol, true
			}
		}
		if !replaced {
			spec.Volumes = append(spec.Volumes, vol)
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: set.Namespace, Labels: lbls, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{controllerutil.ControllerRef(set, gvk)},
		},
		Spec: spec,
	}
	_, err := c.client.CoreV1().Pods(set.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", name, set.Name, err)
		return err
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", name, set.Name)
	return nil
}

// ensureClaim creates a pod's claim from its template if it is missing.
// Claims are not owned by the pod: they survive it and are re-used.
func (c *Controller) ensureClaim(ctx context.Context, set *appsv1.StatefulSet, tmpl corev1.PersistentVolumeClaim, name string) error {
	if _, err := c.claims.PersistentVolumeClaims(set.Namespace).Get(name); err == nil {
		return nil
	}
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: set.Namespace, Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec:       tmpl.Spec,
	}
	if p := set.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && p.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		claim.OwnerReferences = []metav1.OwnerReference{controllerutil.ControllerRef(set, gvk)}
	}
	_, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, claim, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Claim %s for StatefulSet %s success", name, set.Name)
	}
	return err
}

func (c *Controller) deletePod(ctx context.Context, set *appsv1.StatefulSet, p *corev1.Pod) error {
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, set.Name)
	}
	return err
}

func (c *Controller) updateStatus(ctx context.Context, set *appsv1.StatefulSet, rev string, owned []*corev1.Pod, replicas int) error {
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation, UpdateRevision: rev, CurrentRevision: set.Status.CurrentRevision,
		CollisionCount: set.Status.CollisionCount,
	}
	for _, p := range owned {
		if p.DeletionTimestamp != nil {
			continue
		}
		st.Replicas++
		if controllerutil.IsPodReady(p) {
			st.ReadyReplicas++
			if controllerutil.IsPodAvailable(p, set.Spec.MinReadySeconds, c.Clock.Now()) {
				st.AvailableReplicas++
			}
		}
		if p.Labels[RevisionLabel] == rev {
			st.UpdatedReplicas++
		}
	}
	if st.CurrentRevision == "" || (st.UpdatedReplicas == int32(replicas) && st.ReadyReplicas == int32(replicas)) {
		st.CurrentRevision = rev
	}
	if st.CurrentRevision == rev {
		st.CurrentReplicas = st.UpdatedReplicas
	} else {
		st.CurrentReplicas = st.Replicas - st.UpdatedReplicas
	}
	if equality.Semantic.DeepEqual(set.Status, st) {
		return nil
	}
	set.Status = st
	_, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, set, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
