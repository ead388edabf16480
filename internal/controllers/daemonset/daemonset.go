// Package daemonset runs one pod of each DaemonSet on every eligible node:
// nodes its node selector and affinity accept and whose taints it
// tolerates (with the tolerations upstream adds to daemon pods). Pods are
// pinned to their node with a node-name affinity and placed by the
// scheduler; RollingUpdate replaces outdated pods maxUnavailable at a
// time; ControllerRevisions record each template.
package daemonset

import (
	"context"
	"log/slog"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-dev/skiff/internal/controllers/controllerutil"
	"github.com/skiff-dev/skiff/internal/informerutil"
	"github.com/skiff-dev/skiff/internal/nodeaffinity"
)

var gvk = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// RevisionHashLabel ties pods and revisions to a template.
const RevisionHashLabel = appsv1.ControllerRevisionHashLabelKey

// daemonTolerations are added to every daemon pod, as upstream does, so
// that node conditions do not evict node agents.
var daemonTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

// hostNetworkToleration is added to daemon pods on the host network, which
// need no pod network to run.
var hostNetworkToleration = corev1.Toleration{
	Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
}

// Controller reconciles DaemonSets.
type Controller struct {
	client    kubernetes.Interface
	dsLister  listersappsv1.DaemonSetLister
	nodes     listerscorev1.NodeLister
	pods      listerscorev1.PodLister
	revisions listersappsv1.ControllerRevisionLister
	synced    []cache.InformerSynced
	queue     workqueue.TypedRateLimitingInterface[string]
	expect    *controllerutil.Expectations
	recorder  record.EventRecorder
	events    record.EventBroadcaster
	log       *slog.Logger
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, log *slog.Logger) *Controller {
	ds := factory.Apps().V1().DaemonSets()
	nodes := factory.Core().V1().Nodes()
	pods := factory.Core().V1().Pods()
	revs := factory.Apps().V1().ControllerRevisions()
	c := &Controller{
		client: client, dsLister: ds.Lister(), nodes: nodes.Lister(), pods: pods.Lister(), revisions: revs.Lister(), log: log, Clock: clock.RealClock{},
		synced: []cache.InformerSynced{ds.Informer().HasSynced, nodes.Informer().HasSynced, pods.Informer().HasSynced, revs.Informer().HasSynced},
		queue:  controllerutil.NewQueue("daemonset"),
	}
	c.expect = controllerutil.NewExpectationsWithClock(controllerutil.ClockRef{P: &c.Clock})
	c.events, c.recorder = controllerutil.NewRecorder("daemonset-controller")
	enqueue := controllerutil.EnqueueKey(c.queue)
	all := func(any) {
		sets, _ := c.dsLister.List(labels.Everything())
		for _, s := range sets {
			enqueue(s)
		}
	}
	_, _ = ds.Informer().AddEventHandler(informerutil.OnAddOrUpdate(enqueue))
	_, _ = nodes.Informer().AddEventHandler(informerutil.OnAnyChange(all))
	podEvent := func(o any, adds, dels int) {
		p, ok := informerutil.Unwrap(o).(*corev1.Pod)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == gvk.Kind {
			key := p.Namespace + "/" + ref.Name
			c.expect.Observed(key, adds, dels)
			c.queue.Add(key)
		}
	}
	_, _ = pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { podEvent(o, 1, 0) }, UpdateFunc: func(_, o any) { podEvent(o, 0, 0) }, DeleteFunc: func(o any) { podEvent(o, 0, 1) },
	})
	return c
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	controllerutil.StartEvents(ctx, c.events, c.client)
	controllerutil.RunSynced(ctx, c.synced, c.queue, 2, c.sync, c.log)
}

// podTemplate is the template with the daemon tolerations added.
func podTemplate(ds *appsv1.DaemonSet) *corev1.PodTemplateSpec {
	t := ds.Spec.Template.DeepCopy()
	tolerations := daemonTolerations
	if t.Spec.HostNetwork {
		tolerations = append(tolerations[:len(tolerations):len(tolerations)], hostNetworkToleration)
	}
	for _, tol := range tolerations {
		have := false
		for _, existing := range t.Spec.Tolerations {
			if existing.Key == tol.Key && existing.Effect == tol.Effect {
				have = true
			}
		}
		if !have {
			t.Spec.Tolerations = append(t.Spec.Tolerations, tol)
		}
	}
	return t
}

// placement reports whether a daemon pod belongs on node (run), and
// whether one already there may stay (keep). As upstream, a NoSchedule
// taint the pod does not tolerate (a node gone not ready, say) stops new
// pods but does not delete running ones; only NoExecute taints do.
func placement(tmpl *corev1.PodTemplateSpec, node *corev1.Node) (run, keep bool) {
	pod := &corev1.Pod{Spec: tmpl.Spec}
	if sel := nodeaffinity.Required(pod); sel != nil && !sel.Matches(node) {
		return false, false
	}
	run = true
	for i := range node.Spec.Taints {
		t := &node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		ok := false
		for j := range tmpl.Spec.Tolerations {
			if tmpl.Spec.Tolerations[j].ToleratesTaint(klog.Background(), t, false) {
				ok = true
				break
			}
		}
		if !ok {
			if t.Effect == corev1.TaintEffectNoExecute {
				return false, false
			}
			run = false
		}
	}
	return run, true
}

// keptPods returns, of the daemon pods on a node where they may stay but
// not be created, the ones to delete: failed ones, and all running ones
// but the oldest.
func keptPods(pods []*corev1.Pod) (remove []*corev1.Pod) {
	var running []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			remove = append(remove, p)
			continue
		}
		running = append(running, p)
	}
	sort.Slice(running, func(i, j int) bool { return running[i].CreationTimestamp.Before(&running[j].CreationTimestamp) })
	if len(running) > 1 {
		remove = append(remove, running[1:]...)
	}
	return remove
}

// nodeOf is the node a daemon pod is bound or pinned to.
func nodeOf(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range t.MatchFields {
				if f.Key == "metadata.name" && len(f.Values) == 1 {
					return f.Values[0]
				}
			}
		}
	}
	return ""
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Delete(key)
		return nil
	}
	if err != nil {
		return err
	}
	ds = ds.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() || ds.DeletionTimestamp != nil {
		return nil
	}
	tmpl := podTemplate(ds)
	hash := controllerutil.TemplateHash(&ds.Spec.Template, nil)
	if err := controllerutil.EnsureRevision(ctx, c.client, c.revisions, ds, gvk, ds.Spec.Template, hash); err != nil {
		return err
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	nsPods, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var live []*corev1.Pod
	for _, p := range nsPods {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	owned, err := controllerutil.ClaimPods(ctx, c.client, ds, gvk, sel, live, func(ctx context.Context) (metav1.Object, error) {
		return c.client.AppsV1().DaemonSets(ds.Namespace).Get(ctx, ds.Name, metav1.GetOptions{})
	})
	if err != nil {
		return err
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range owned {
		byNode[nodeOf(p)] = append(byNode[nodeOf(p)], p)
	}
	var create []string
	var remove []*corev1.Pod
	wanted := map[string]bool{}
	kept := map[string]bool{}
	surge := maxSurge(ds, len(nodes))
	for _, n := range nodes {
		run, keep := placement(tmpl, n)
		if !keep {
			remove = append(remove, byNode[n.Name]...)
			continue
		}
		if !run {
			kept[n.Name] = true
			remove = append(remove, keptPods(byNode[n.Name])...)
			continue
		}
		wanted[n.Name] = true
		pods := byNode[n.Name]
		var running []*corev1.Pod
		for _, p := range pods {
			if p.Status.Phase == corev1.PodFailed {
				remove = append(remove, p) // replaced below
				continue
			}
			running = append(running, p)
		}
		if len(running) == 0 {
			create = append(create, n.Name)
			continue
		}
		sort.Slice(running, func(i, j int) bool { return running[i].CreationTimestamp.Before(&running[j].CreationTimestamp) })
		if surge == 0 {
			remove = append(remove, running[1:]...) // one per node
			continue
		}
		// With maxSurge the new pod starts beside the old one, which goes
		// once the new one is available.
		var updated, old []*corev1.Pod
		for _, p := range running {
			if p.Labels[RevisionHashLabel] == hash {
				updated = append(updated, p)
			} else {
				old = append(old, p)
			}
		}
		switch {
		case len(updated) > 0:
			remove = append(remove, updated[1:]...)
			if controllerutil.IsPodAvailable(updated[0], ds.Spec.MinReadySeconds, c.Clock.Now()) {
				remove = append(remove, old...)
			} else {
				surge-- // this node is mid-surge
			}
		default:
			remove = append(remove, old[1:]...)
			if surge > 0 {
				create = append(create, n.Name)
				surge--
			}
		}
	}
	for node, pods := range byNode {
		if !wanted[node] && !kept[node] {
			remove = append(remove, pods...)
		}
	}
	if c.expect.Satisfied(key) {
		if maxSurge(ds, len(nodes)) == 0 {
			remove = append(remove, c.outdated(ds, hash, owned, wanted)...)
		}
		c.expect.Expect(key, len(create), len(dedupe(remove)))
		for _, node := range create {
			if err := c.createPod(ctx, ds, tmpl, hash, node); err != nil {
				c.expect.Observed(key, 1, 0)
				return err
			}
		}
		for _, p := range dedupe(remove) {
			err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil {
				c.expect.Observed(key, 0, 1)
				if !apierrors.IsNotFound(err) {
					return err
				}
				continue
			}
			c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
		}
	}
	return c.updateStatus(ctx, ds, hash, owned, wanted)
}

func dedupe(pods []*corev1.Pod) []*corev1.Pod {
	seen := map[string]bool{}
	var out []*corev1.Pod
	for _, p := range pods {
		if !seen[string(p.UID)] {
			seen[string(p.UID)] = true
			out = append(out, p)
		}
	}
	return out
}

// outdated picks pods of an old template to replace under RollingUpdate,
// keeping at most maxUnavailable daemon pods unavailable.
func (c *Controller) outdated(ds *appsv1.DaemonSet, hash string, owned []*corev1.Pod, wanted map[string]bool) []*corev1.Pod {
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return nil
	}
	maxUnavailable := 1
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, len(wanted), true); err == nil {
			maxUnavailable = max(n, 1)
		}
	}
	unavailable := len(wanted)
	var old []*corev1.Pod
	for _, p := range owned {
		if !wanted[nodeOf(p)] {
			continue
		}
		if controllerutil.IsPodAvailable(p, ds.Spec.MinReadySeconds, c.Clock.Now()) {
			unavailable--
		}
		if p.Labels[RevisionHashLabel] != hash {
			old = append(old, p)
		}
	}
	var out []*corev1.Pod
	// Unavailable old pods go first; they cost no availability.
	sort.Slice(old, func(i, j int) bool { return !controllerutil.IsPodReady(old[i]) && controllerutil.IsPodReady(old[j]) })
	for _, p := range old {
		if !controllerutil.IsPodReady(p) {
			out = append(out, p)
			continue
		}
		if unavailable >= maxUnavailable {
			break
		}
		out = append(out, p)
		unavailable++
	}
	return out
}

func (c *Controller) createPod(ctx context.Context, ds *appsv1.DaemonSet, tmpl *corev1.PodTemplateSpec, hash, node string) error {
	t := tmpl.DeepCopy()
	labelsWithHash := map[string]string{RevisionHashLabel: hash}
	for k, v := range t.Labels {
		labelsWithHash[k] = v
	}
	pin := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{
		Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node},
	}}}
	if t.Spec.Affinity == nil {
		t.Spec.Affinity = &corev1.Affinity{}
	}
	if t.Spec.Affinity.NodeAffinity == nil {
		t.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	t.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{pin}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ds.Name + "-", Namespace: ds.Namespace, Labels: labelsWithHash, Annotations: t.Annotations,
			OwnerReferences: []metav1.OwnerReference{controllerutil.ControllerRef(ds, gvk)},
		},
		Spec: t.Spec,
	}
	created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", created.Name)
	return nil
}

func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, hash string, owned []*corev1.Pod, wanted map[string]bool) error {
	st := appsv1.DaemonSetStatus{DesiredNumberScheduled: int32(len(wanted)), ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount}
	counted := map[string]bool{}
	for _, p := range owned {
		node := nodeOf(p)
		if !wanted[node] {
			st.NumberMisscheduled++
			continue
		}
		if counted[node] {
			continue
		}
		counted[node] = true
		st.CurrentNumberScheduled++
		if controllerutil.IsPodReady(p) {
			st.NumberReady++
		}
		if controllerutil.IsPodAvailable(p, ds.Spec.MinReadySeconds, c.Clock.Now()) {
			st.NumberAvailable++
		}
		if p.Labels[RevisionHashLabel] == hash {
			st.UpdatedNumberScheduled++
		}
	}
	st.NumberUnavailable = max(st.DesiredNumberScheduled-st.NumberAvailable, 0)
	if equality.Semantic.DeepEqual(ds.Status, st) {
		return nil
	}
	ds.Status = st
	_, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// maxSurge is how many nodes may run an extra, updated daemon pod at once.
func maxSurge(ds *appsv1.DaemonSet, nodes int) int {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType || ru == nil || ru.MaxSurge == nil {
		return 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, nodes, true)
	if err != nil {
		return 0
	}
	return n
}
