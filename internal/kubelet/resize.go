package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// In-place resize, as upstream's kubelet: the resources a container runs
// with are its *allocation*, which starts as the spec's and follows a
// resize (pods/resize) only once the node has room for it. The allocation
// is checkpointed under the pod's directory, so a restarted agent neither
// forgets an accepted resize nor accepts one it had deferred. Accepted
// changes are applied to running containers with UpdateContainerResources
// (or a restart, when the container's resizePolicy asks for one).

// allocationFile is the checkpoint of a pod's allocation.
const allocationFile = "allocated.json"

// podAllocation is what a pod's containers are allowed to use.
type podAllocation struct {
	Containers map[string]v1.ResourceRequirements `json:"containers"`

	// Not checkpointed: the resize being reported.
	pending    *v1.PodCondition // PodResizePending (Deferred or Infeasible)
	inProgress *v1.PodCondition // PodResizeInProgress
}

// allocations holds every pod's allocation and what was last applied to
// each of its running containers (by pod, then container ID).
type allocations struct {
	mu      sync.Mutex
	dir     string // the kubelet's pods directory
	pods    map[types.UID]*podAllocation
	applied map[types.UID]map[string]v1.ResourceRequirements
}

func newAllocations(podsDir string) *allocations {
	return &allocations{dir: podsDir, pods: map[types.UID]*podAllocation{}, applied: map[types.UID]map[string]v1.ResourceRequirements{}}
}

// get returns the pod's allocation, loading its checkpoint on first use;
// nil when it has none yet. Callers hold a.mu.
func (a *allocations) get(uid types.UID) *podAllocation {
	if pa, ok := a.pods[uid]; ok {
		return pa
	}
	data, err := os.ReadFile(filepath.Join(a.dir, string(uid), allocationFile))
	if err != nil {
		return nil
	}
	pa := &podAllocation{}
	if json.Unmarshal(data, pa) != nil || pa.Containers == nil {
		return nil
	}
	a.pods[uid] = pa
	return pa
}

// save checkpoints the pod's allocation. Callers hold a.mu.
func (a *allocations) save(uid types.UID, pa *podAllocation) error {
	a.pods[uid] = pa
	dir := filepath.Join(a.dir, string(uid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(pa)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, allocationFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, allocationFile))
}

// forget drops a removed pod's allocation.
func (a *allocations) forget(uid types.UID) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pods, uid)
	delete(a.applied, uid)
	os.Remove(filepath.Join(a.dir, string(uid), allocationFile))
}

// resizableContainers are the containers whose resources may change in
// place: app containers and sidecars.
func resizableContainers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			out = append(out, &pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

// specAllocation is the allocation the pod's spec asks for.
func specAllocation(pod *v1.Pod) *podAllocation {
	pa := &podAllocation{Containers: map[string]v1.ResourceRequirements{}}
	for _, c := range resizableContainers(pod) {
		pa.Containers[c.Name] = *c.Resources.DeepCopy()
	}
	return pa
}

// allocatedResources is what container c may use: its allocation, or its
// spec before the pod has one (and for containers that never resize).
func (k *Kubelet) allocatedResources(pod *v1.Pod, c *v1.Container) v1.ResourceRequirements {
	if k.alloc == nil {
		return c.Resources
	}
	k.alloc.mu.Lock()
	defer k.alloc.mu.Unlock()
	if pa := k.alloc.get(pod.UID); pa != nil {
		if r, ok := pa.Containers[c.Name]; ok {
			return r
		}
	}
	return c.Resources
}

// allocatedRequests is the container's status.allocatedResources.
func (k *Kubelet) allocatedRequests(pod *v1.Pod, c *v1.Container) v1.ResourceList {
	if ephemeralContainer(pod, c.Name) != nil {
		return nil
	}
	r := k.allocatedResources(pod, c)
	if len(r.Requests) == 0 {
		return nil
	}
	return r.Requests.DeepCopy()
}

// resourceStatus fills a running container's status.resources: what was
// last applied to it (the allocation, until a resize is actuated).
func (k *Kubelet) resourceStatus(pod *v1.Pod, c *v1.Container, id string, cs *v1.ContainerStatus) {
	if ephemeralContainer(pod, c.Name) != nil {
		return
	}
	r := k.allocatedResources(pod, c)
	if k.alloc != nil {
		k.alloc.mu.Lock()
		if applied, ok := k.alloc.applied[pod.UID][id]; ok {
			r = applied
		}
		k.alloc.mu.Unlock()
	}
	cs.Resources = r.DeepCopy()
}

// ensureAllocation gives a pod seen for the first time the allocation of
// its spec.
func (k *Kubelet) ensureAllocation(pod *v1.Pod) error {
	k.alloc.mu.Lock()
	defer k.alloc.mu.Unlock()
	if k.alloc.get(pod.UID) != nil {
		return nil
	}
	return k.alloc.save(pod.UID, specAllocation(pod))
}

// resizeDecision is the outcome of a requested resize.
type resizeDecision struct {
	accept          bool
	reason, message string // PodResizePending's, when not accepted
}

// decideResize admits the desired allocation if the node has room for it
// beside the other pods' allocations, as upstream's admission does:
// Infeasible when even an empty node could not hold it, Deferred when it
// must wait for room.
func decideResize(desired v1.ResourceList, others v1.ResourceList, allocatable v1.ResourceList) resizeDecision {
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		want, ok := desired[name]
		capacity, known := allocatable[name]
		if !ok || !known {
			continue
		}
		if want.Cmp(capacity) > 0 {
			return resizeDecision{reason: v1.PodReasonInfeasible, message: fmt.Sprintf("Node didn't have enough capacity: %s, requested: %d, capacity: %d",
				name, quantityUnits(name, want), quantityUnits(name, capacity))}
		}
		used := others[name]
		total := used.DeepCopy()
		total.Add(want)
		if total.Cmp(capacity) > 0 {
			return resizeDecision{reason: v1.PodReasonDeferred, message: fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
				name, quantityUnits(name, want), quantityUnits(name, used), quantityUnits(name, capacity))}
		}
	}
	return resizeDecision{accept: true}
}

// quantityUnits prints CPU in millicores and memory in bytes, as upstream's
// messages do.
func quantityUnits(name v1.ResourceName, q resource.Quantity) int64 {
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// podRequestsOf sums an allocation's requests.
func podRequestsOf(pa *podAllocation) v1.ResourceList {
	sum := v1.ResourceList{}
	for _, r := range pa.Containers {
		for name, q := range r.Requests {
			cur := sum[name]
			cur.Add(q)
			sum[name] = cur
		}
	}
	return sum
}

// nodeAllocatable is what the node reports as allocatable for CPU and memory.
func nodeAllocatable() v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(numCPU()), resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
	}
}

// syncResize admits a pending resize of a running pod and applies the
// allocation to its running containers.
func (k *Kubelet) syncResize(ctx context.Context, pod *v1.Pod, state *podRuntime) {
	sb := state.readySandbox()
	if k.alloc == nil || sb == nil {
		return
	}
	k.admitResize(pod)
	k.actuateResize(ctx, pod, state, sb.Id)
}

func (k *Kubelet) admitResize(pod *v1.Pod) {
	desired := specAllocation(pod)
	k.alloc.mu.Lock()
	pa := k.alloc.get(pod.UID)
	if pa == nil || equality.Semantic.DeepEqual(pa.Containers, desired.Containers) {
		if pa != nil {
			pa.pending = nil // the spec went back to what is allocated
		}
		k.alloc.mu.Unlock()
		return
	}
	others := v1.ResourceList{}
	for uid, o := range k.alloc.pods {
		if uid == pod.UID || !k.podActive(uid) {
			continue
		}
		for name, q := range podRequestsOf(o) {
			cur := others[name]
			cur.Add(q)
			others[name] = cur
		}
	}
	d := decideResize(podRequestsOf(desired), others, nodeAllocatable())
	now := metav1.NewTime(k.clock.Now())
	if !d.accept {
		changed := pa.pending == nil || pa.pending.Reason != d.reason || pa.pending.ObservedGeneration != pod.Generation
		pa.pending = &v1.PodCondition{Type: v1.PodResizePending, Status: v1.ConditionTrue, Reason: d.reason, Message: d.message,
			ObservedGeneration: pod.Generation, LastTransitionTime: now, LastProbeTime: now}
		k.alloc.mu.Unlock()
		if changed {
			event := "ResizeDeferred"
			if d.reason == v1.PodReasonInfeasible {
				event = "ResizeInfeasible"
			}
			k.recorder.Eventf(pod, v1.EventTypeWarning, event, "Pod resize %s: %s", d.reason, resizeSummary(pod, d.message))
		}
		return
	}
	desired.inProgress = &v1.PodCondition{Type: v1.PodResizeInProgress, Status: v1.ConditionTrue,
		ObservedGeneration: pod.Generation, LastTransitionTime: now, LastProbeTime: now}
	err := k.alloc.save(pod.UID, desired)
	k.alloc.mu.Unlock()
	if err != nil {
		k.log.Warn("checkpoint pod allocation", "pod", podKey(pod), "err", err)
		return
	}
	k.recorder.Eventf(pod, v1.EventTypeNormal, "ResizeStarted", "Pod resize started: %s", resizeSummary(pod, ""))
}

// actuateResize brings each running resizable container to its
// allocation and ends PodResizeInProgress once all are there.
func (k *Kubelet) actuateResize(ctx context.Context, pod *v1.Pod, state *podRuntime, sandboxID string) {
	k.pruneApplied(pod.UID, state)
	done := true
	for _, c := range resizableContainers(pod) {
		inst := state.instances(c.Name, sandboxID)
		if len(inst) == 0 || inst[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		id := inst[0].Id
		want := k.allocatedResources(pod, c)
		k.alloc.mu.Lock()
		have, known := k.alloc.applied[pod.UID][id]
		k.alloc.mu.Unlock()
		if known && equality.Semantic.DeepEqual(have, want) {
			continue
		}
		if known && needsRestart(c, have, want) {
			// The next sync starts it again with its allocation.
			k.recorder.Eventf(pod, v1.EventTypeNormal, "Killing", "Container %s resize requires restart", c.Name)
			if err := k.stopContainer(ctx, pod, c, id, gracePeriod(pod)); err != nil {
				k.log.Warn("restart container for resize", "pod", podKey(pod), "container", c.Name, "err", err)
			}
			done = false
			continue
		}
		lr := linuxResources(want)
		lr.OomScoreAdj = oomScoreAdj(pod, c, memTotal())
		err := k.runtime.runtime.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: lr})
		if err != nil {
			k.log.Warn("update container resources", "pod", podKey(pod), "container", c.Name, "err", err)
			k.recorder.Eventf(pod, v1.EventTypeWarning, "ResizeError", "Pod resize error: %s", resizeSummary(pod, err.Error()))
			done = false
			continue
		}
		k.markApplied(pod.UID, id, want)
	}
	k.alloc.mu.Lock()
	pa := k.alloc.get(pod.UID)
	finished := done && pa != nil && pa.inProgress != nil
	if finished {
		pa.inProgress = nil
	}
	k.alloc.mu.Unlock()
	if finished {
		k.recorder.Eventf(pod, v1.EventTypeNormal, "ResizeCompleted", "Pod resize completed: %s", resizeSummary(pod, ""))
	}
}

// markApplied records the resources a running container was given.
func (k *Kubelet) markApplied(uid types.UID, id string, r v1.ResourceRequirements) {
	if k.alloc == nil {
		return
	}
	k.alloc.mu.Lock()
	defer k.alloc.mu.Unlock()
	if k.alloc.applied[uid] == nil {
		k.alloc.applied[uid] = map[string]v1.ResourceRequirements{}
	}
	k.alloc.applied[uid][id] = *r.DeepCopy()
}

// pruneApplied forgets containers the runtime no longer has.
func (k *Kubelet) pruneApplied(uid types.UID, state *podRuntime) {
	live := map[string]bool{}
	for _, c := range state.containers {
		live[c.Id] = true
	}
	k.alloc.mu.Lock()
	defer k.alloc.mu.Unlock()
	for id := range k.alloc.applied[uid] {
		if !live[id] {
			delete(k.alloc.applied[uid], id)
		}
	}
}

// resizeNeedsRestart reports whether the running container id of the pod
// must restart to take its allocation (the planner's resize verdict).
func (k *Kubelet) resizeNeedsRestart(pod *v1.Pod, name, id string) bool {
	if k.alloc == nil {
		return false
	}
	var c *v1.Container
	for _, rc := range resizableContainers(pod) {
		if rc.Name == name {
			c = rc
		}
	}
	if c == nil {
		return false
	}
	k.alloc.mu.Lock()
	have, known := k.alloc.applied[pod.UID][id]
	k.alloc.mu.Unlock()
	return known && needsRestart(c, have, k.allocatedResources(pod, c))
}

// needsRestart reports whether a resource that changed has the
// RestartContainer resize policy.
func needsRestart(c *v1.Container, have, want v1.ResourceRequirements) bool {
	for _, p := range c.ResizePolicy {
		if p.RestartPolicy != v1.RestartContainer {
			continue
		}
		for _, pair := range [][2]v1.ResourceList{{have.Requests, want.Requests}, {have.Limits, want.Limits}} {
			a, b := pair[0][p.ResourceName], pair[1][p.ResourceName]
			if a.Cmp(b) != 0 {
				return true
			}
		}
	}
	return false
}

// resizeConditions are the pod's PodResizePending and PodResizeInProgress
// conditions, when a resize is waiting or being applied.
func (k *Kubelet) resizeConditions(pod *v1.Pod) []v1.PodCondition {
	if k.alloc == nil {
		return nil
	}
	k.alloc.mu.Lock()
	defer k.alloc.mu.Unlock()
	pa := k.alloc.get(pod.UID)
	if pa == nil {
		return nil
	}
	var out []v1.PodCondition
	for _, c := range []*v1.PodCondition{pa.pending, pa.inProgress} {
		if c != nil {
			out = append(out, *c)
		}
	}
	return out
}

func isResizeCondition(t v1.PodConditionType) bool {
	return t == v1.PodResizePending || t == v1.PodResizeInProgress
}

// resizeSummary is the JSON summary of the pod's desired resources that
// upstream's resize events carry.
func resizeSummary(pod *v1.Pod, errMsg string) string {
	type ctr struct {
		Name      string                  `json:"name"`
		Resources v1.ResourceRequirements `json:"resources,omitempty"`
	}
	s := struct {
		InitContainers []ctr  `json:"initContainers,omitempty"`
		Containers     []ctr  `json:"containers,omitempty"`
		Generation     int64  `json:"generation"`
		Error          string `json:"error,omitempty"`
	}{Generation: pod.Generation, Error: errMsg}
	for _, c := range pod.Spec.InitContainers {
		if isSidecar(&c) {
			s.InitContainers = append(s.InitContainers, ctr{c.Name, c.Resources})
		}
	}
	for _, c := range pod.Spec.Containers {
		s.Containers = append(s.Containers, ctr{c.Name, c.Resources})
	}
	data, _ := json.Marshal(s)
	return string(data)
}

// podActive reports whether the kubelet still runs the pod.
func (k *Kubelet) podActive(uid types.UID) bool {
	k.workersMu.Lock()
	defer k.workersMu.Unlock()
	_, ok := k.workers[uid]
	return ok
}
