package scheduler

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/crash"
)

// prepareVolumes runs the volume plugins' PreFilter for pods that use
// claims or shared disks; other pods skip it and the volume filters.
func (s *Scheduler) prepareVolumes(state *cycleState) {
	if s.vols == nil || !needsVolumeState(state.pod) {
		return
	}
	state.volumes, state.volumeMsg = s.vols.preFilter(state.pod, s.cache)
}

// startVolumeBinding reserves the chosen node's volumes for an assumed pod
// and, when claims need binding, binds them and then the pod in the
// background: waiting for a provisioner must not hold up the scheduling
// loop, nor a bind worker. It reports false when the pod has nothing to
// bind and the plain binding path should go on.
func (s *Scheduler) startVolumeBinding(ctx context.Context, qp *queuedPod, state *cycleState, host string) bool {
	node := s.cache.nodeObject(host)
	var r *volumeReservation
	err := fmt.Errorf("node %s disappeared", host)
	if node != nil {
		r, err = s.vols.reserve(state.volumes, node)
	}
	if err != nil {
		s.cache.forget(qp.pod.UID)
		s.log.Info("volume reservation failed", "pod", qp.pod.Namespace+"/"+qp.pod.Name, "err", err)
		s.queue.requeue(qp, false)
		return true
	}
	if r == nil {
		return false
	}
	s.queue.done(qp.pod.UID)
	s.binds.Add(1)
	go func() {
		defer s.binds.Done()
		defer crash.Recover(s.log, "scheduler")
		s.bindWithVolumes(ctx, qp, host, r)
	}()
	return true
}

// bindWithVolumes is PreBind then Bind for a pod with claims to bind. On
// failure the reservation is undone and the pod retried after a backoff.
func (s *Scheduler) bindWithVolumes(ctx context.Context, qp *queuedPod, host string, r *volumeReservation) {
	pod := qp.pod
	if err := s.vols.bindVolumes(ctx, pod, r); err != nil {
		s.cache.forget(pod.UID)
		s.metrics.attempt("error", qp.attemptStart)
		if ctx.Err() != nil {
			s.vols.release(r) // shutting down: leave the API as it is
			return
		}
		s.vols.revert(ctx, r)
		s.log.Info("volume binding failed", "pod", pod.Namespace+"/"+pod.Name, "node", host, "err", err)
		if p, gerr := s.podLister.Pods(pod.Namespace).Get(pod.Name); gerr != nil || p.UID != pod.UID || p.DeletionTimestamp != nil {
			return
		}
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "running PreBind plugin %q: %v", "VolumeBinding", err)
		s.queue.retry(qp)
		return
	}
	s.vols.release(r)
	s.bindSem <- struct{}{}
	defer func() { <-s.bindSem }()
	s.bind(ctx, qp, host)
}

// onStorageChange wakes unschedulable pods a storage event may help: the
// pods using a claim that changed, or any pod with volumes for changes to
// PVs, classes and CSI objects.
func (s *Scheduler) onStorageChange(claim *corev1.PersistentVolumeClaim) {
	if claim == nil {
		s.queue.moveMatching(needsVolumeState)
		return
	}
	s.queue.moveMatching(func(p *corev1.Pod) bool {
		if p.Namespace != claim.Namespace {
			return false
		}
		for i := range p.Spec.Volumes {
			if name, _ := podClaimName(p, &p.Spec.Volumes[i]); name == claim.Name {
				return true
			}
		}
		return false
	})
}

// forEachClaim calls f with "namespace/claim" for each claim a pod uses.
func forEachClaim(pod *corev1.Pod, f func(key string)) {
	for i := range pod.Spec.Volumes {
		if name, _ := podClaimName(pod, &pod.Spec.Volumes[i]); name != "" {
			f(claimKey(pod.Namespace, name))
		}
	}
}

// claimUsers counts the placed pods using any of the claims: in total and
// per node.
func (c *cache) claimUsers(keys []string) (int, map[string]int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	total, perNode := 0, map[string]int{}
	for name, ni := range c.nodes {
		for _, k := range keys {
			if n := ni.claims[k]; n > 0 {
				total += n
				perNode[name] += n
			}
		}
	}
	return total, perNode
}

func (c *cache) nodeObject(name string) *corev1.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if ni := c.nodes[name]; ni != nil {
		return ni.node
	}
	return nil
}
