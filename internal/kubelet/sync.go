package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// retrySoon is how long a sync waits after an error it expects to clear.
const retrySoon = 2 * time.Second

// syncPod drives one pod's runtime state toward its spec and reports the
// resulting status. It returns when to sync again, or finished once the
// pod is gone from the API and from the runtime.
func (k *Kubelet) syncPod(ctx context.Context, w *podWorker) (next time.Duration, finished bool) {
	pod, removed := w.snapshot()
	if pod == nil {
		return 0, true
	}
	state, err := k.runtime.podState(ctx, pod.UID)
	if err != nil {
		if ctx.Err() == nil {
			k.log.Warn("read pod runtime state", "pod", podKey(pod), "err", err)
		}
		return retrySoon, false
	}

	if removed || pod.DeletionTimestamp != nil {
		return k.terminatePod(ctx, w, pod, removed)
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		// Finished pods keep their containers (for logs) but release the
		// sandbox and its IP, as upstream does.
		k.stopSandboxes(ctx, state)
		k.probes.removePod(pod.UID)
		k.untrackPodObjects(pod.UID)
		return 0, false
	}
	if !k.admit(ctx, w, pod, state) {
		return 0, false // rejected: Failed, waiting for its controller to delete it
	}

	k.trackPodObjects(pod)
	volumes, err := k.setupVolumes(ctx, pod)
	if err != nil {
		k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedMount", "%v", err)
		k.writeStatus(ctx, w, pod, state, nil)
		return retrySoon, false
	}

	if err := k.ensureAllocation(pod); err != nil {
		k.log.Warn("checkpoint pod allocation", "pod", podKey(pod), "err", err)
	}
	next, err = k.reconcile(ctx, w, pod, state, volumes)
	if err != nil && ctx.Err() == nil {
		k.log.Warn("sync pod", "pod", podKey(pod), "err", err)
	}
	if state, err = k.runtime.podState(ctx, pod.UID); err != nil {
		return retrySoon, false
	}
	k.syncResize(ctx, pod, state)
	k.probes.sync(pod, state)
	k.writeStatus(ctx, w, pod, state, volumes)
	return next, false
}

// reconcile makes sure a sandbox exists, runs init containers one at a
// time, then starts and restarts app containers per restartPolicy.
func (k *Kubelet) reconcile(ctx context.Context, w *podWorker, pod *v1.Pod, state *podRuntime, volumes map[string]string) (time.Duration, error) {
	sb := state.readySandbox()
	if sb == nil {
		if podIsDone(pod, state) {
			return 0, nil
		}
		if err := k.stopPodContainers(ctx, pod, state, 2); err != nil {
			return retrySoon, err
		}
		k.stopSandboxes(ctx, state)
		id, err := k.createSandbox(ctx, pod, uint32(len(state.sandboxes)))
		if err != nil {
			k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return retrySoon, err
		}
		fresh, err := k.runtime.podState(ctx, pod.UID)
		if err != nil {
			return retrySoon, err
		}
		*state = *fresh
		if sb = state.readySandbox(); sb == nil || sb.Id != id {
			return retrySoon, errors.New("new sandbox is not ready")
		}
	}
	podIP, err := k.sandboxIP(ctx, pod, sb.Id)
	if err != nil {
		return retrySoon, err
	}
	if !pod.Spec.HostNetwork {
		if err := k.writeHostsFile(pod, podIP); err != nil {
			return retrySoon, err
		}
	}
	env := &podEnv{k: k, pod: pod, podIP: podIP}

	next := time.Duration(0)
	requeue := func(d time.Duration) {
		if d > 0 && (next == 0 || d < next) {
			next = d
		}
	}

	// Ephemeral containers run beside whatever else runs.
	requeue(k.syncEphemeralContainers(ctx, w, pod, sb, state, env, volumes))

	// Init containers, in order, each to completion.
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		inst := state.instances(c.Name, sb.Id)
		if len(inst) == 0 {
			d, err := k.startContainer(ctx, w, pod, c, sb, state, env, volumes, true)
			requeue(d)
			return next, err
		}
		latest := inst[0]
		if isSidecar(c) {
			// A sidecar keeps running beside the app containers: once it
			// runs, the next init container may start.
			if latest.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				d, err := k.syncAppContainer(ctx, w, pod, c, sb, state, env, volumes)
				requeue(d)
				return next, err
			}
			continue
		}
		switch latest.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			return next, nil
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			st, err := k.runtime.containerStatus(ctx, latest.Id)
			if err != nil {
				return retrySoon, err
			}
			if st.ExitCode == 0 {
				continue
			}
			if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				return 0, nil // the pod has failed; status says so
			}
			d, err := k.restartWithBackoff(ctx, w, pod, c, sb, state, env, volumes, st, true)
			requeue(d)
			return next, err
		default:
			// Created but never started (a failed start): replace it.
			k.removeContainer(ctx, latest.Id)
			d, err := k.startContainer(ctx, w, pod, c, sb, state, env, volumes, true)
			requeue(d)
			return next, err
		}
	}

	var firstErr error
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		d, err := k.syncAppContainer(ctx, w, pod, c, sb, state, env, volumes)
		requeue(d)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return next, firstErr
}

func (k *Kubelet) syncAppContainer(ctx context.Context, w *podWorker, pod *v1.Pod, c *v1.Container, sb *runtimeapi.PodSandbox,
	state *podRuntime, env *podEnv, volumes map[string]string) (time.Duration, error) {
	inst := state.instances(c.Name, sb.Id)
	if len(inst) == 0 {
		return k.startContainer(ctx, w, pod, c, sb, state, env, volumes, false)
	}
	latest := inst[0]
	switch latest.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		reason := ""
		switch {
		case !definitionUnchanged(latest.Annotations[annotationHash], c):
			reason = "its definition changed"
		case k.probes.mustRestart(latest.Id):
			reason = "it failed its liveness or startup probe"
		default:
			return 0, nil
		}
		k.recorder.Eventf(pod, v1.EventTypeNormal, "Killing", "Stopping container %s: %s, it will be restarted", c.Name, reason)
		if err := k.stopContainer(ctx, pod, c, latest.Id, gracePeriod(pod)); err != nil {
			return retrySoon, err
		}
		// The next sync decides about the restart from the exit.
		return 100 * time.Millisecond, nil
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		st, err := k.runtime.containerStatus(ctx, latest.Id)
		if err != nil {
			return retrySoon, err
		}
		if !shouldRestart(pod.Spec.RestartPolicy, st.ExitCode) {
			return 0, nil
		}
		return k.restartWithBackoff(ctx, w, pod, c, sb, state, env, volumes, st, false)
	default:
		k.removeContainer(ctx, latest.Id)
		return k.startContainer(ctx, w, pod, c, sb, state, env, volumes, false)
	}
}

func shouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// restartWithBackoff restarts an exited container unless it is inside its
// CrashLoopBackOff window: the first restart is immediate, then 10 s
// doubling to 5 min, reset once a run lasted 10 min.
func (k *Kubelet) restartWithBackoff(ctx context.Context, w *podWorker, pod *v1.Pod, c *v1.Container, sb *runtimeapi.PodSandbox,
	state *podRuntime, env *podEnv, volumes map[string]string, exited *runtimeapi.ContainerStatus, init bool) (time.Duration, error) {
	key := backoffKey(pod.UID, c.Name)
	finished := time.Unix(0, exited.FinishedAt)
	if exited.StartedAt > 0 && time.Duration(exited.FinishedAt-exited.StartedAt) >= 10*time.Minute {
		k.backoff.reset(key)
	}
	if wait := k.backoff.remaining(key, finished); wait > 0 {
		w.waiting[c.Name] = waitingReason{"CrashLoopBackOff",
			fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", k.backoff.current(key), c.Name, pod.Name, pod.Namespace, pod.UID)}
		return wait, nil
	}
	k.backoff.next(key, finished)
	return k.startContainer(ctx, w, pod, c, sb, state, env, volumes, init)
}

// podIsDone reports a pod whose sandbox is gone and that will not run
// again: every app container exited and restartPolicy forbids restarts.
func podIsDone(pod *v1.Pod, state *podRuntime) bool {
	if len(state.sandboxes) == 0 || pod.Spec.RestartPolicy == v1.RestartPolicyAlways {
		return false
	}
	latest := state.latestSandbox().Id
	for _, c := range pod.Spec.Containers {
		inst := state.instances(c.Name, latest)
		if len(inst) == 0 || inst[0].State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return false
		}
	}
	return pod.Spec.RestartPolicy == v1.RestartPolicyNever
}

// terminatePod stops a pod being deleted: preStop hooks, SIGTERM, the grace
// period, SIGKILL; then the final status and the object's removal (grace 0).
// Once the object is gone, the sandbox, containers and volumes go too.
func (k *Kubelet) terminatePod(ctx context.Context, w *podWorker, pod *v1.Pod, removed bool) (time.Duration, bool) {
	grace := gracePeriod(pod)
	if removed && pod.DeletionTimestamp == nil {
		grace = 2
	}
	if err := k.killPod(ctx, pod, grace, removed); err != nil {
		k.log.Warn("kill pod", "pod", podKey(pod), "err", err)
		return retrySoon, false
	}
	if removed {
		k.probes.removePod(pod.UID)
		k.backoff.forgetPod(pod.UID)
		k.alloc.forget(pod.UID)
		if err := k.teardownVolumes(pod.UID); err != nil {
			k.log.Warn("remove pod volumes", "pod", podKey(pod), "err", err)
			return retrySoon, false
		}
		os.RemoveAll(k.podLogDir(pod))
		k.statusMu.Lock()
		delete(k.lastSentState, pod.UID)
		k.statusMu.Unlock()
		return 0, true
	}
	if state, err := k.runtime.podState(ctx, pod.UID); err == nil {
		k.writeStatus(ctx, w, pod, state, nil)
	}
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		k.log.Warn("delete terminated pod", "pod", podKey(pod), "err", err)
		return retrySoon, false
	}
	// The informer's delete event finishes the worker; resync in case it
	// was missed.
	return 5 * time.Second, false
}

func gracePeriod(pod *v1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return v1.DefaultTerminationGracePeriodSeconds
}
