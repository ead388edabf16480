// Package nodelifecycle watches node heartbeats (Leases in
// kube-node-lease and the Ready condition). A node silent for longer than
// the grace period is marked Ready=Unknown and tainted unreachable; a
// NotReady node is tainted not-ready; pods on such nodes are marked not
// ready and evicted once their tolerations of those NoExecute taints run
// out. Tainting is paced per zone and stops altogether while no node in
// the cluster is ready, as upstream's disruption modes (disruption.go).
// Each node also carries the NoSchedule taints its conditions and
// spec.unschedulable call for, unpaced (noschedule.go).
// It also gives each node a pod CIDR from the cluster CIDR.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscoordinationv1 "k8s.io/client-go/listers/coordination/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Config tunes the controller; zero values take upstream's defaults.
type Config struct {
	// GracePeriod is how long a node may go without a heartbeat (40 s).
	GracePeriod time.Duration
	// ClusterCIDR is split into per-node /24 pod CIDRs (10.42.0.0/16).
	ClusterCIDR string
	// Clock reads the time; tests pass a fake one.
	Clock clock.PassiveClock
	// EvictionRate is how many nodes per second a healthy zone may get
	// tainted for eviction (0.1).
	EvictionRate float64
	// SecondaryEvictionRate replaces it in a partially disrupted zone of a
	// large cluster (0.01).
	SecondaryEvictionRate float64
	// LargeClusterSize is the zone size above which a partially disrupted
	// zone still taints, at the secondary rate (50).
	LargeClusterSize int
	// UnhealthyZoneThreshold is the share of not-ready nodes (at least
	// three) that makes a zone partially disrupted (0.55).
	UnhealthyZoneThreshold float64
}

// Controller tracks node health.
type Controller struct {
	client  kubernetes.Interface
	nodes   listerscorev1.NodeLister
	pods    listerscorev1.PodLister
	leases  listerscoordinationv1.LeaseLister
	synced  []cache.InformerSynced
	cfg     Config
	cluster *net.IPNet
	log     *slog.Logger

	mu         sync.Mutex // one monitor pass at a time
	zoneStates map[string]zoneState
	limiters   map[string]*bucket
	// graceFrom restarts every node's grace period when full disruption
	// ends, so nodes get time to report again before they count as lost.
	graceFrom time.Time
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config, log *slog.Logger) (*Controller, error) {
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = 40 * time.Second
	}
	if cfg.ClusterCIDR == "" {
		cfg.ClusterCIDR = "10.42.0.0/16"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.EvictionRate == 0 {
		cfg.EvictionRate = 0.1
	}
	if cfg.SecondaryEvictionRate == 0 {
		cfg.SecondaryEvictionRate = 0.01
	}
	if cfg.LargeClusterSize == 0 {
		cfg.LargeClusterSize = 50
	}
	if cfg.UnhealthyZoneThreshold == 0 {
		cfg.UnhealthyZoneThreshold = 0.55
	}
	_, cluster, err := net.ParseCIDR(cfg.ClusterCIDR)
	if err != nil || cluster.IP.To4() == nil {
		return nil, fmt.Errorf("invalid cluster CIDR %q", cfg.ClusterCIDR)
	}
	nodes := factory.Core().V1().Nodes()
	pods := factory.Core().V1().Pods()
	leases := factory.Coordination().V1().Leases()
	return &Controller{
		client: client, nodes: nodes.Lister(), pods: pods.Lister(), leases: leases.Lister(), cfg: cfg, cluster: cluster, log: log,
		synced:     []cache.InformerSynced{nodes.Informer().HasSynced, pods.Informer().HasSynced, leases.Informer().HasSynced},
		zoneStates: map[string]zoneState{}, limiters: map[string]*bucket{},
	}, nil
}

// Run monitors nodes every few seconds until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return
	}
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.monitor(ctx); err != nil {
			c.log.Warn("node monitor", "err", err)
		}
	}, time.Second)
}

// Monitor runs one pass; exported for tests that drive the clock.
func (c *Controller) Monitor(ctx context.Context) error { return c.monitor(ctx) }

func (c *Controller) monitor(ctx context.Context) error {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock.Now()
	zones := map[string][]*corev1.NodeCondition{}
	checked := make([]*corev1.Node, 0, len(nodes))
	usedCIDRs := map[string]bool{}
	for _, n := range nodes {
		if n.Spec.PodCIDR != "" {
			usedCIDRs[n.Spec.PodCIDR] = true
		}
	}
	for _, n := range nodes {
		n, err := c.allocateCIDR(ctx, n, usedCIDRs)
		if err != nil {
			c.log.Warn("allocate pod CIDR", "node", n.Name, "err", err)
		}
		node, err := c.updateHealth(ctx, n, now)
		if err != nil {
			c.log.Warn("node health", "node", n.Name, "err", err)
			continue
		}
		if err := c.updateNoScheduleTaints(ctx, node, now); err != nil {
			c.log.Warn("node NoSchedule taints", "node", node.Name, "err", err)
		}
		checked = append(checked, node)
		if _, excluded := node.Labels[labelExcludeDisruption]; !excluded {
			if rc := readyCondition(node); rc != nil {
				zones[zoneKey(node)] = append(zones[zoneKey(node)], rc)
			}
		}
	}
	wasFull := c.allFullyDisrupted()
	if c.handleDisruption(zones, now) {
		// No node is ready: drop the eviction taints, so nothing is evicted
		// until some node comes back.
		for _, n := range checked {
			if err := c.setTaint(ctx, n, "", now); err != nil {
				c.log.Warn("remove eviction taint", "node", n.Name, "err", err)
			}
		}
	}
	if wasFull && !c.allFullyDisrupted() {
		c.graceFrom = now
	}
	for _, n := range checked {
		if err := c.taintAndEvict(ctx, n, now); err != nil {
			c.log.Warn("node taints", "node", n.Name, "err", err)
		}
	}
	return nil
}

// allFullyDisrupted reports whether the last pass found every zone fully
// disrupted.
func (c *Controller) allFullyDisrupted() bool {
	if len(c.zoneStates) == 0 {
		return false
	}
	for _, s := range c.zoneStates {
		if s != stateFullDisruption {
			return false
		}
	}
	return true
}

func readyCondition(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// lastHeartbeat is the later of the node's Lease renewal and its Ready
// condition's heartbeat.
func (c *Controller) lastHeartbeat(n *corev1.Node) time.Time {
	t := n.CreationTimestamp.Time
	if rc := readyCondition(n); rc != nil && rc.LastHeartbeatTime.After(t) {
		t = rc.LastHeartbeatTime.Time
	}
	if l, err := c.leases.Leases(corev1.NamespaceNodeLease).Get(n.Name); err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(t) {
		t = l.Spec.RenewTime.Time
	}
	return t
}

// updateHealth marks a node silent for longer than the grace period
// Ready=Unknown and its pods not ready; it returns the node as it now is.
func (c *Controller) updateHealth(ctx context.Context, n *corev1.Node, now time.Time) (*corev1.Node, error) {
	node := n.DeepCopy()
	rc := readyCondition(node)
	last := c.lastHeartbeat(node)
	if c.graceFrom.After(last) {
		last = c.graceFrom
	}
	silent := now.Sub(last) > c.cfg.GracePeriod
	if silent && (rc == nil || rc.Status != corev1.ConditionUnknown) {
		cond := corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown",
			Message: "Kubelet stopped posting node status.", LastHeartbeatTime: metav1.NewTime(c.lastHeartbeat(node)),
			LastTransitionTime: metav1.NewTime(now),
		}
		if rc == nil {
			node.Status.Conditions = append(node.Status.Conditions, cond)
		} else {
			*rc = cond
		}
		updated, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err != nil {
			return nil, err
		}
		node = updated
		// As upstream, in every disruption mode: endpoints stop sending
		// traffic to pods nobody can vouch for.
		c.markPodsNotReady(ctx, node.Name)
	}
	return node, nil
}

// taintAndEvict gives the node the NoExecute taint that matches its Ready
// condition, and only it, then evicts the pods that do not tolerate its
// NoExecute taints. Adding a taint to an untainted node waits for the
// zone's limiter; swapping one for the other and removing them do not.
func (c *Controller) taintAndEvict(ctx context.Context, node *corev1.Node, now time.Time) error {
	rc := readyCondition(node)
	want := ""
	switch {
	case rc == nil:
	case rc.Status == corev1.ConditionUnknown:
		want = corev1.TaintNodeUnreachable
	case rc.Status == corev1.ConditionFalse:
		want = corev1.TaintNodeNotReady
	}
	have := ""
	for _, t := range node.Spec.Taints {
		if (t.Key == corev1.TaintNodeUnreachable || t.Key == corev1.TaintNodeNotReady) && t.Effect == corev1.TaintEffectNoExecute {
			have = t.Key
		}
	}
	if want != "" && have == "" && !c.limiter(zoneKey(node), now).tryAccept(now) {
		want = "" // not this pass: the zone's eviction rate is used up or zero
	}
	if want != "" || have != "" {
		if err := c.setTaint(ctx, node, want, now); err != nil {
			return err
		}
	}
	return c.evict(ctx, node, now)
}

func (c *Controller) setTaint(ctx context.Context, node *corev1.Node, want string, now time.Time) error {
	var taints []corev1.Taint
	has := false
	changed := false
	for _, t := range node.Spec.Taints {
		if (t.Key == corev1.TaintNodeUnreachable || t.Key == corev1.TaintNodeNotReady) && t.Effect == corev1.TaintEffectNoExecute {
			if t.Key == want {
				has = true
			} else {
				changed = true
				continue
			}
		}
		taints = append(taints, t)
	}
	if want != "" && !has {
		added := metav1.NewTime(now)
		taints = append(taints, corev1.Taint{Key: want, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added})
		changed = true
	}
	if !changed {
		return nil
	}
	next := node.DeepCopy()
	next.Spec.Taints = taints
	updated, err := c.client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*node = *updated
	return nil
}

func (c *Controller) markPodsNotReady(ctx context.Context, nodeName string) {
	pods, _ := c.pods.List(labels.Everything())
	for _, p := range pods {
		if p.Spec.NodeName != nodeName || p.DeletionTimestamp != nil {
			continue
		}
		next := p.DeepCopy()
		changed := false
		for i := range next.Status.Conditions {
			if next.Status.Conditions[i].Type == corev1.PodReady && next.Status.Conditions[i].Status != corev1.ConditionFalse {
				next.Status.Conditions[i].Status = corev1.ConditionFalse
				next.Status.Conditions[i].LastTransitionTime = metav1.NewTime(c.cfg.Clock.Now())
				changed = true
			}
		}
		if changed {
			if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				c.log.Debug("mark pod not ready", "pod", p.Name, "err", err)
			}
		}
	}
}

// evict deletes pods that do not tolerate the node's NoExecute taints, at
// once or when their tolerationSeconds run out.
func (c *Controller) evict(ctx context.Context, node *corev1.Node, now time.Time) error {
	var noExec []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			noExec = append(noExec, t)
		}
	}
	if len(noExec) == 0 {
		return nil
	}
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, p := range pods {
		if p.Spec.NodeName != node.Name || p.DeletionTimestamp != nil {
			continue
		}
		deadline, evictable := evictionTime(p, noExec)
		if !evictable || now.Before(deadline) {
			continue
		}
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		c.log.Info("evicted pod from tainted node", "pod", p.Namespace+"/"+p.Name, "node", node.Name)
	}
	return nil
}

// evictionTime returns when a pod must leave a node with these NoExecute
// taints: never if it tolerates them all forever.
func evictionTime(p *corev1.Pod, taints []corev1.Taint) (time.Time, bool) {
	var at time.Time
	evict := false
	for i := range taints {
		t := &taints[i]
		added := time.Time{}
		if t.TimeAdded != nil {
			added = t.TimeAdded.Time
		}
		var tol *corev1.Toleration
		for j := range p.Spec.Tolerations {
			if p.Spec.Tolerations[j].ToleratesTaint(klog.Background(), t, false) {
				tol = &p.Spec.Tolerations[j]
				break
			}
		}
		switch {
		case tol == nil:
			return added, true
		case tol.TolerationSeconds != nil:
			d := added.Add(time.Duration(*tol.TolerationSeconds) * time.Second)
			if !evict || d.Before(at) {
				at, evict = d, true
			}
		}
	}
	return at, evict
}

// allocateCIDR gives a node the first /24 of the cluster CIDR not in used,
// and adds it there; it returns the node as it now is.
func (c *Controller) allocateCIDR(ctx context.Context, n *corev1.Node, used map[string]bool) (*corev1.Node, error) {
	if n.Spec.PodCIDR != "" {
		return n, nil
	}
	ones, _ := c.cluster.Mask.Size()
	if ones > 24 {
		return n, fmt.Errorf("cluster CIDR %s is smaller than a /24", c.cluster)
	}
	base := c.cluster.IP.To4()
	for i := 0; i < 1<<(24-ones); i++ {
		ip := net.IPv4(base[0], base[1]+byte(i>>8), base[2]+byte(i), 0).To4()
		cidr := (&net.IPNet{IP: ip, Mask: net.CIDRMask(24, 32)}).String()
		if used[cidr] {
			continue
		}
		next := n.DeepCopy()
		next.Spec.PodCIDR, next.Spec.PodCIDRs = cidr, []string{cidr}
		updated, err := c.client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{})
		if err != nil {
			return n, err
		}
		used[cidr] = true
		return updated, nil
	}
	return n, fmt.Errorf("no free pod CIDR left in %s", c.cluster)
}
