package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
)

// simNode is one simulated node. node and lease are the last versions
// written; only the worker holding the node's task of that kind touches
// them (the queue never hands one item to two workers), and register runs
// before either task exists.
type simNode struct {
	name    string
	address string       // InternalIP
	podCIDR netip.Prefix // for a new node; an existing node keeps its own
	node    *corev1.Node
	lease   *coordinationv1.Lease
}

func newSimNode(prefix string, i int, podCIDR netip.Prefix) *simNode {
	// Node addresses from 172.16.0.0/12, pod ranges one /24 each.
	a := 172<<24 | 16<<16 | uint32(i+1)
	addr := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	b := podCIDR.Addr().As4()
	p := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8) + uint32(i)<<8
	cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(p >> 24), byte(p >> 16), byte(p >> 8), 0}), 24)
	return &simNode{name: fmt.Sprintf("%s%d", prefix, i), address: addr.String(), podCIDR: cidr}
}

type taskKind uint8

const (
	taskRegister taskKind = iota
	taskLease
	taskStatus
)

type task struct {
	node *simNode
	kind taskKind
}

// startHeartbeats registers every node and then renews leases and status
// from a delaying queue, with cfg.Writers workers: the number of
// concurrent writes stays bounded however many nodes there are.
func (s *sim) startHeartbeats(ctx context.Context, wg *sync.WaitGroup) workqueue.TypedRateLimitingInterface[task] {
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[task](200*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[task]{Name: "sim-heartbeat"})
	for _, n := range s.order {
		q.Add(task{n, taskRegister})
	}
	for range s.cfg.Writers {
		wg.Go(func() {
			for {
				t, shutdown := q.Get()
				if shutdown {
					return
				}
				s.heartbeat(ctx, q, t)
				q.Done(t)
			}
		})
	}
	return q
}

func (s *sim) heartbeat(ctx context.Context, q workqueue.TypedRateLimitingInterface[task], t task) {
	if ctx.Err() != nil {
		return
	}
	var err error
	switch t.kind {
	case taskRegister:
		if err = s.register(ctx, t.node); err == nil {
			// Spread the first renewals over an interval, so that
			// nodes registered together do not renew together forever.
			q.AddAfter(task{t.node, taskLease}, jitter(s.cfg.LeaseInterval, 0, 1))
			q.AddAfter(task{t.node, taskStatus}, jitter(s.cfg.StatusInterval, 0.5, 1))
		}
	case taskLease:
		if err = s.renewLease(ctx, t.node); err == nil {
			q.AddAfter(t, s.cfg.LeaseInterval)
		}
	case taskStatus:
		if err = s.updateStatus(ctx, t.node); err == nil {
			q.AddAfter(t, jitter(s.cfg.StatusInterval, 0.9, 1.1))
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("node heartbeat", "node", t.node.name, "task", t.kind, "err", err)
		}
		q.AddRateLimited(t)
		return
	}
	q.Forget(t)
}

// jitter returns d scaled by a random factor in [lo, hi).
func jitter(d time.Duration, lo, hi float64) time.Duration {
	return time.Duration(float64(d) * (lo + rand.Float64()*(hi-lo)))
}

func (s *sim) capacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              s.cfg.CPU,
		corev1.ResourceMemory:           s.cfg.Memory,
		corev1.ResourcePods:             *resource.NewQuantity(int64(s.cfg.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
}

// applyNode sets what the simulator owns on a node: labels, pod CIDR
// (only when unset: it is immutable) and status.
func (s *sim) applyNode(node *corev1.Node, n *simNode, now metav1.Time) {
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	node.Labels[corev1.LabelHostname] = n.name
	node.Labels[corev1.LabelOSStable] = "linux"
	node.Labels[corev1.LabelArchStable] = "amd64"
	node.Labels["type"] = "skiff-sim"
	if node.Spec.PodCIDR == "" && len(node.Spec.PodCIDRs) == 0 {
		node.Spec.PodCIDR, node.Spec.PodCIDRs = n.podCIDR.String(), []string{n.podCIDR.String()}
	}
	st := &node.Status
	st.Capacity, st.Allocatable = s.capacity(), s.capacity()
	st.Phase = corev1.NodeRunning
	st.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.address}, {Type: corev1.NodeHostName, Address: n.name}}
	st.DaemonEndpoints.KubeletEndpoint.Port = 10250
	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID: n.name, SystemUUID: n.name, BootID: n.name, KernelVersion: "sim", OSImage: "skiff sim",
		ContainerRuntimeVersion: "sim://1", KubeletVersion: "v1.37.2-sim", OperatingSystem: "linux", Architecture: "amd64",
	}
	setCondition(st, corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "simulated node is ready", now)
	setCondition(st, corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "", now)
	setCondition(st, corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "", now)
	setCondition(st, corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "", now)
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setCondition refreshes a condition's heartbeat, moving its transition
// time only when its status changes.
func setCondition(st *corev1.NodeStatus, typ corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message, c.LastHeartbeatTime = status, reason, msg, now
		return
	}
	st.Conditions = append(st.Conditions, corev1.NodeCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now})
}

// register creates the node, or takes over an existing one of that name,
// then writes its status and its Lease.
func (s *sim) register(ctx context.Context, n *simNode) error {
	nodes := s.client.CoreV1().Nodes()
	now := metav1.Now()
	want := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}
	s.applyNode(want, n, now)
	node, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	created := node
	if apierrors.IsAlreadyExists(err) {
		if node, err = nodes.Get(ctx, n.name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("get node: %w", err)
		}
		s.applyNode(node, n, now)
		node, err = nodes.Update(ctx, node, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	n.node = node
	// A server may drop status on create (it is a subresource); write it
	// then, and always for a node taken over.
	if ready := node.Status.Allocatable.Pods().Value() == int64(s.cfg.MaxPods) && isReady(node); !ready || created == nil {
		if err := s.updateStatus(ctx, n); err != nil {
			return err
		}
	}
	if err := s.renewLease(ctx, n); err != nil {
		return err
	}
	cidr := n.node.Spec.PodCIDR
	if len(n.node.Spec.PodCIDRs) > 0 {
		cidr = n.node.Spec.PodCIDRs[0]
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("node %s pod CIDR %q: %w", n.name, cidr, err)
	}
	s.ipam.setPrefix(n.name, p.Masked())
	return nil
}

// updateStatus rewrites the node's status from the last version written,
// fetching the node again only on a conflict.
func (s *sim) updateStatus(ctx context.Context, n *simNode) error {
	nodes := s.client.CoreV1().Nodes()
	cur := n.node
	for attempt := 0; ; attempt++ {
		next := cur.DeepCopy()
		s.applyNode(next, n, metav1.Now())
		updated, err := nodes.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			n.node = updated
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == 4 {
			return fmt.Errorf("update node status: %w", err)
		}
		if cur, err = nodes.Get(ctx, n.name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("get node: %w", err)
		}
	}
}

// renewLease writes the node's Lease, creating it if needed; like the
// kubelet it reuses the last version written, without a read first.
func (s *sim) renewLease(ctx context.Context, n *simNode) error {
	leases := s.client.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	if n.lease == nil {
		l := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.name, Namespace: leaseNamespace},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.name),
				LeaseDurationSeconds: ptr.To(int32(40)),
				RenewTime:            &now,
			},
		}
		if n.node != nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: n.node.UID}}
		}
		created, err := leases.Create(ctx, l, metav1.CreateOptions{})
		if err == nil {
			n.lease = created
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create lease: %w", err)
		}
		if n.lease, err = leases.Get(ctx, n.name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("get lease: %w", err)
		}
	}
	next := n.lease.DeepCopy()
	next.Spec.HolderIdentity = ptr.To(n.name)
	next.Spec.RenewTime = &now
	updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		// Fetch (or recreate) it on the next attempt.
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			n.lease = nil
		}
		return fmt.Errorf("renew lease: %w", err)
	}
	n.lease = updated
	return nil
}
