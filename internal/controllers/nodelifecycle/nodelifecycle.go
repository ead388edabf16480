// Package nodelifecycle watches node heartbeats (Leases in
// kube-node-lease and the Ready condition). A node silent for longer than
// the grace period is marked Ready=Unknown and tainted unreachable; a
// NotReady node is tainted not-ready; pods on such nodes are marked not
// ready and evicted once their tolerations of those NoExecute taints run
// out. It also gives each node a pod CIDR from the cluster CIDR.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"net"
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
)

// Config tunes the controller; zero values take upstream's defaults.
type Config struct {
	// GracePeriod is how long a node may go without a heartbeat (40 s).
	GracePeriod time.Duration
	// ClusterCIDR is split into per-node /24 pod CIDRs (10.42.0.0/16).
	ClusterCIDR string
	// Now is the clock; tests replace it.
	Now func() time.Time
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
}

// New builds the controller on factory's informers.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config, log *slog.Logger) (*Controller, error) {
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = 40 * time.Second
	}
	if cfg.ClusterCIDR == "" {
		cfg.ClusterCIDR = "10.42.0.0/16"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
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
		synced: []cache.InformerSynced{nodes.Informer().HasSynced, pods.Informer().HasSynced, leases.Informer().HasSynced},
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
	now := c.cfg.Now()
	for _, n := range nodes {
		if err := c.allocateCIDR(ctx, n, nodes); err != nil {
			c.log.Warn("allocate pod CIDR", "node", n.Name, "err", err)
		}
		if err := c.checkNode(ctx, n, now); err != nil {
			c.log.Warn("node health", "node", n.Name, "err", err)
		}
	}
	return nil
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

func (c *Controller) checkNode(ctx context.Context, n *corev1.Node, now time.Time) error {
	node := n.DeepCopy()
	rc := readyCondition(node)
	silent := now.Sub(c.lastHeartbeat(node)) > c.cfg.GracePeriod
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
			return err
		}
		node = updated
		rc = readyCondition(node)
		c.markPodsNotReady(ctx, node.Name)
	}
	// The taint that matches the node's state, and only it.
	want := ""
	switch {
	case rc == nil:
	case rc.Status == corev1.ConditionUnknown:
		want = corev1.TaintNodeUnreachable
	case rc.Status == corev1.ConditionFalse:
		want = corev1.TaintNodeNotReady
	}
	if err := c.setTaint(ctx, node, want, now); err != nil {
		return err
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
				next.Status.Conditions[i].LastTransitionTime = metav1.Now()
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

// allocateCIDR gives a node the first free /24 of the cluster CIDR.
func (c *Controller) allocateCIDR(ctx context.Context, n *corev1.Node, all []*corev1.Node) error {
	if n.Spec.PodCIDR != "" {
		return nil
	}
	used := map[string]bool{}
	for _, o := range all {
		if o.Spec.PodCIDR != "" {
			used[o.Spec.PodCIDR] = true
		}
	}
	ones, _ := c.cluster.Mask.Size()
	if ones > 24 {
		return fmt.Errorf("cluster CIDR %s is smaller than a /24", c.cluster)
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
		_, err := c.client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{})
		return err
	}
	return fmt.Errorf("no free pod CIDR left in %s", c.cluster)
}
