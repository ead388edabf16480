package scheduler

import (
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// nodeInfo is a node with what the scheduler knows is placed on it.
type nodeInfo struct {
	node        *corev1.Node
	allocatable resources
	requested   resources // sum of podRequests of its pods
	// nonZero* are requests with best-effort defaults, for scoring.
	nonZeroCPU, nonZeroMem int64
	pods                   map[types.UID]*podInfo
	usedPorts              map[hostPort]int
	images                 map[string]int64 // image name -> size
	claims                 map[string]int   // "namespace/claim" -> pods using it
	generation             int64
}

type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

// podInfo is a pod placed on a node, with its requests computed once.
type podInfo struct {
	pod      *corev1.Pod
	requests resources
}

func newNodeInfo(n *corev1.Node) *nodeInfo {
	ni := &nodeInfo{pods: map[types.UID]*podInfo{}, usedPorts: map[hostPort]int{}, claims: map[string]int{}}
	ni.setNode(n)
	return ni
}

func (ni *nodeInfo) setNode(n *corev1.Node) {
	ni.node = n
	ni.allocatable = fromList(n.Status.Allocatable)
	ni.images = map[string]int64{}
	for _, img := range n.Status.Images {
		for _, name := range img.Names {
			ni.images[name] = img.SizeBytes
		}
	}
	ni.generation = nextGeneration()
}

func (ni *nodeInfo) addPod(pi *podInfo) {
	if _, ok := ni.pods[pi.pod.UID]; ok {
		ni.removePod(pi.pod.UID)
	}
	ni.pods[pi.pod.UID] = pi
	ni.requested.add(&pi.requests)
	cpu, mem := scoringRequests(pi.requests)
	ni.nonZeroCPU += cpu
	ni.nonZeroMem += mem
	for _, hp := range podHostPorts(pi.pod) {
		ni.usedPorts[hp]++
	}
	forEachClaim(pi.pod, func(key string) { ni.claims[key]++ })
	ni.generation = nextGeneration()
}

func (ni *nodeInfo) removePod(uid types.UID) {
	pi, ok := ni.pods[uid]
	if !ok {
		return
	}
	delete(ni.pods, uid)
	ni.requested.sub(&pi.requests)
	cpu, mem := scoringRequests(pi.requests)
	ni.nonZeroCPU -= cpu
	ni.nonZeroMem -= mem
	for _, hp := range podHostPorts(pi.pod) {
		if ni.usedPorts[hp]--; ni.usedPorts[hp] <= 0 {
			delete(ni.usedPorts, hp)
		}
	}
	forEachClaim(pi.pod, func(key string) {
		if ni.claims[key]--; ni.claims[key] <= 0 {
			delete(ni.claims, key)
		}
	})
	ni.generation = nextGeneration()
}

func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			ip := p.HostIP
			if ip == "" {
				ip = "0.0.0.0"
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			out = append(out, hostPort{ip: ip, protocol: proto, port: p.HostPort})
		}
	}
	return out
}

// generations number nodeInfo changes across all nodes, so that a cached
// per-node count can never match a different nodeInfo of the same name.
var generations atomic.Int64

func nextGeneration() int64 { return generations.Add(1) }

// cache is the scheduler's view of nodes and the pods placed on them,
// including pods it has assumed onto a node but whose binding the API
// server has not yet confirmed.
type cache struct {
	mu       sync.RWMutex
	nodes    map[string]*nodeInfo
	order    []string // node names, for round-robin filtering
	podNode  map[types.UID]string
	assumed  map[types.UID]time.Time // assumed pod -> when the bind finished (zero while binding)
	assumeTT time.Duration
	clock    clock.PassiveClock // stamps finished bindings for expiry
	antiPods int                // placed pods with required anti-affinity
	// nominated are pending pods that preempted on a node, by node: their
	// requests are held there against pods of no higher priority.
	nominated     map[string]map[types.UID]*podInfo
	nominatedNode map[types.UID]string
}

func newCache(clk clock.PassiveClock) *cache {
	return &cache{
		clock:    clk,
		nodes:    map[string]*nodeInfo{},
		podNode:  map[types.UID]string{},
		assumed:  map[types.UID]time.Time{},
		assumeTT: 30 * time.Second,

		nominated:     map[string]map[types.UID]*podInfo{},
		nominatedNode: map[types.UID]string{},
	}
}

// setNominated records where a pending pod that preempted waits (its
// status.nominatedNodeName), or forgets it once it is placed or gone.
func (c *cache) setNominated(pod *corev1.Pod) {
	node := pod.Status.NominatedNodeName
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil {
		node = ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.nominatedNode[pod.UID]; ok {
		if prev == node {
			c.nominated[node][pod.UID] = &podInfo{pod: pod, requests: podRequests(pod)}
			return
		}
		delete(c.nominated[prev], pod.UID)
		if len(c.nominated[prev]) == 0 {
			delete(c.nominated, prev)
		}
		delete(c.nominatedNode, pod.UID)
	}
	if node == "" {
		return
	}
	if c.nominated[node] == nil {
		c.nominated[node] = map[types.UID]*podInfo{}
	}
	c.nominated[node][pod.UID] = &podInfo{pod: pod, requests: podRequests(pod)}
	c.nominatedNode[pod.UID] = node
}

// forgetNominated drops a deleted pod's nomination.
func (c *cache) forgetNominated(pod *corev1.Pod) {
	gone := pod.DeepCopy()
	gone.DeletionTimestamp = &metav1.Time{}
	c.setNominated(gone)
}

// withNominatedLocked is ni as pod must see it: with the pods nominated
// to it whose priority is at least pod's added, as upstream's filters run
// (they preempted for that room). ni itself when there are none.
func (c *cache) withNominatedLocked(pod *corev1.Pod, ni *nodeInfo) *nodeInfo {
	if len(c.nominated) == 0 {
		// The common case, checked first: it runs for every node a pod is
		// filtered against, and hashing the node's name cost more than
		// the filters.
		return ni
	}
	noms := c.nominated[ni.node.Name]
	if len(noms) == 0 {
		return ni
	}
	prio := priorityOf(pod)
	var trial *nodeInfo
	for uid, pi := range noms {
		if uid == pod.UID || priorityOf(pi.pod) < prio {
			continue
		}
		if trial == nil {
			trial = newNodeInfo(ni.node)
			for _, placed := range ni.pods {
				trial.addPod(placed)
			}
		}
		trial.addPod(pi)
	}
	if trial == nil {
		return ni
	}
	return trial
}

// hasTerminatingLower reports, under the read lock, what
// hasTerminatingLowerLocked does.
func (c *cache) hasTerminatingLower(pod *corev1.Pod, node string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.hasTerminatingLowerLocked(pod, node)
}

// hasTerminatingLowerLocked reports whether a pod of lower priority than
// pod is still terminating on the node: pod's earlier preemption there is
// still under way.
func (c *cache) hasTerminatingLowerLocked(pod *corev1.Pod, node string) bool {
	ni := c.nodes[node]
	if ni == nil {
		return false
	}
	prio := priorityOf(pod)
	for _, pi := range ni.pods {
		if pi.pod.DeletionTimestamp != nil && priorityOf(pi.pod) < prio {
			return true
		}
	}
	return false
}

func (c *cache) upsertNode(n *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ni, ok := c.nodes[n.Name]; ok {
		ni.setNode(n)
		return
	}
	c.nodes[n.Name] = newNodeInfo(n)
	c.order = append(c.order, n.Name)
}

func (c *cache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni, ok := c.nodes[name]
	if !ok {
		return
	}
	for uid := range ni.pods {
		delete(c.podNode, uid)
		delete(c.assumed, uid)
	}
	delete(c.nodes, name)
	for i, n := range c.order {
		if n == name {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// addPod records a pod the API server reports bound to a node. A pod the
// scheduler assumed is thereby confirmed.
func (c *cache) addPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.assumed, pod.UID)
	c.placeLocked(pod, pod.Spec.NodeName)
}

func (c *cache) placeLocked(pod *corev1.Pod, nodeName string) {
	if _, ok := c.podNode[pod.UID]; ok {
		c.removeLocked(pod.UID)
	}
	ni, ok := c.nodes[nodeName]
	if !ok {
		// The node is not known (yet, or any more); remember the pod so
		// that a later removal is clean.
		c.podNode[pod.UID] = nodeName
		return
	}
	ni.addPod(&podInfo{pod: pod, requests: podRequests(pod)})
	c.podNode[pod.UID] = nodeName
	if hasRequiredAnti(pod) {
		c.antiPods++
	}
}

func (c *cache) removePod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(pod.UID)
}

func (c *cache) removeLocked(uid types.UID) {
	if name, ok := c.podNode[uid]; ok {
		if ni := c.nodes[name]; ni != nil {
			if pi, ok := ni.pods[uid]; ok && hasRequiredAnti(pi.pod) {
				c.antiPods--
			}
			ni.removePod(uid)
		}
		delete(c.podNode, uid)
	}
	delete(c.assumed, uid)
}

// assume counts pod against node before the binding is confirmed.
func (c *cache) assume(pod *corev1.Pod, nodeName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := pod.DeepCopy()
	p.Spec.NodeName = nodeName
	c.placeLocked(p, nodeName)
	c.assumed[pod.UID] = time.Time{}
}

// finishBinding starts the expiry clock of an assumed pod: if the informer
// never confirms it, the assumption is dropped.
func (c *cache) finishBinding(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.assumed[uid]; ok {
		c.assumed[uid] = c.clock.Now()
	}
}

// forget drops an assumption after a failed bind.
func (c *cache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.assumed[uid]; ok {
		c.removeLocked(uid)
	}
}

// expire drops assumptions whose binding finished long ago but was never
// confirmed (the pod was deleted meanwhile, say).
func (c *cache) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	for uid, done := range c.assumed {
		if !done.IsZero() && now.Sub(done) > c.assumeTT {
			c.removeLocked(uid)
		}
	}
}

func (c *cache) isAssumed(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.assumed[uid]
	return ok
}

// anyAntiAffinityLocked reports whether some placed pod has required
// anti-affinity, which every new pod must then be checked against.
func (c *cache) anyAntiAffinityLocked() bool { return c.antiPods > 0 }

func hasRequiredAnti(p *corev1.Pod) bool {
	a := p.Spec.Affinity
	return a != nil && a.PodAntiAffinity != nil && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0
}
