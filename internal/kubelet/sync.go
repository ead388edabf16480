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

	"github.com/skiff-dev/skiff/internal/kubelet/planner"
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

	switch planner.Lifecycle(pod, removed) {
	case planner.Terminate:
		return k.terminatePod(ctx, w, pod, removed)
	case planner.StopSandbox:
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
	exceeded, deadline := planner.ActiveDeadline(pod, k.clock.Now())
	if exceeded {
		return k.failPod(ctx, w, pod, reasonDeadlineExceeded, messageDeadlineExceeded)
	}
	defer func() {
		if deadline > 0 && (next == 0 || deadline < next) {
			next = deadline // wake up to end the pod on time
		}
	}()

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

// reconcile carries out the planner's decisions for a pod that should run:
// observe the runtime, plan, act. A plan that replaced the sandbox is
// followed at once by a plan for the new sandbox's containers, so a pod
// starts within one sync.
func (k *Kubelet) reconcile(ctx context.Context, w *podWorker, pod *v1.Pod, state *podRuntime, volumes map[string]string) (time.Duration, error) {
	for range 2 {
		in, err := k.observe(ctx, pod, state)
		if err != nil {
			return retrySoon, err
		}
		plan := planner.Compute(in)
		if !plan.CreateSandbox {
			return k.execute(ctx, w, pod, state, volumes, &plan)
		}
		if err := k.replaceSandbox(ctx, pod, state, plan.SandboxAttempt); err != nil {
			return retrySoon, err
		}
	}
	return retrySoon, errors.New("new sandbox is not ready")
}

// replaceSandbox stops what is left of the pod and starts a new sandbox,
// then refreshes state.
func (k *Kubelet) replaceSandbox(ctx context.Context, pod *v1.Pod, state *podRuntime, attempt uint32) error {
	if err := k.stopPodContainers(ctx, pod, state, 2); err != nil {
		return err
	}
	k.stopSandboxes(ctx, state)
	id, err := k.createSandbox(ctx, pod, attempt)
	if err != nil {
		k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return err
	}
	fresh, err := k.runtime.podState(ctx, pod.UID)
	if err != nil {
		return err
	}
	*state = *fresh
	if sb := state.readySandbox(); sb == nil || sb.Id != id {
		return errors.New("new sandbox is not ready")
	}
	return nil
}

// observe turns the runtime's view of a pod into the planner's input: the
// exit details of each container's latest exited instance in the ready
// sandbox, and the probes' and resize's verdicts on running ones.
func (k *Kubelet) observe(ctx context.Context, pod *v1.Pod, state *podRuntime) (planner.Input, error) {
	in := planner.Input{
		Pod:         pod,
		Verdicts:    map[string]planner.Verdict{},
		SpecChanged: func(hash string, c *v1.Container) bool { return !definitionUnchanged(hash, c) },
		Backoff: func(name string, finished time.Time) time.Duration {
			return k.backoff.remaining(backoffKey(pod.UID, name), finished)
		},
	}
	for _, s := range state.sandboxes {
		in.Sandboxes = append(in.Sandboxes, planner.Sandbox{ID: s.Id, Ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY})
	}
	ready := state.readySandbox()
	seen := map[string]bool{}
	for _, c := range state.containers {
		pc := planner.Container{ID: c.Id, Name: c.Metadata.GetName(), SandboxID: c.PodSandboxId, State: c.State, Hash: c.Annotations[annotationHash]}
		// Ephemeral containers never restart: their exits need no details.
		latestInReady := ready != nil && c.PodSandboxId == ready.Id && !seen[pc.Name] && ephemeralContainer(pod, pc.Name) == nil
		if latestInReady {
			seen[pc.Name] = true
			switch c.State {
			case runtimeapi.ContainerState_CONTAINER_EXITED:
				st, err := k.runtime.containerStatus(ctx, c.Id)
				if err != nil {
					return in, err
				}
				pc.ExitCode = st.ExitCode
				if st.StartedAt > 0 {
					pc.StartedAt = time.Unix(0, st.StartedAt)
				}
				pc.FinishedAt = time.Unix(0, st.FinishedAt)
			case runtimeapi.ContainerState_CONTAINER_RUNNING:
				in.Verdicts[c.Id] = planner.Verdict{
					LivenessFailed:     k.probes.mustRestart(c.Id),
					ResizeNeedsRestart: k.resizeNeedsRestart(pod, pc.Name, c.Id),
				}
			}
		}
		in.Containers = append(in.Containers, pc)
	}
	return in, nil
}

// execute carries out a plan for the pod's ready sandbox: kills, then
// starts, recording crash-loop waits as the containers' Waiting reasons.
func (k *Kubelet) execute(ctx context.Context, w *podWorker, pod *v1.Pod, state *podRuntime, volumes map[string]string, plan *planner.Plan) (time.Duration, error) {
	next := plan.Requeue
	requeue := func(d time.Duration) {
		if d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	for _, kill := range plan.Kill {
		c := specContainer(pod, kill.Name)
		k.recorder.Eventf(pod, v1.EventTypeNormal, "Killing", "Stopping container %s: %s, it will be restarted", kill.Name, kill.Reason)
		if err := k.stopContainer(ctx, pod, c, kill.ID, gracePeriod(pod)); err != nil {
			return retrySoon, err
		}
	}
	for _, wait := range plan.Wait {
		key := backoffKey(pod.UID, wait.Name)
		w.waiting[wait.Name] = waitingReason{"CrashLoopBackOff",
			fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", k.backoff.current(key), wait.Name, pod.Name, pod.Namespace, pod.UID)}
	}
	if len(plan.Start) == 0 {
		return next, nil
	}
	sb := state.readySandbox()
	if sb == nil || sb.Id != plan.SandboxID {
		return retrySoon, errors.New("pod sandbox changed while planning")
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
	var firstErr error
	for _, s := range plan.Start {
		c := specContainer(pod, s.Name)
		if c == nil {
			continue
		}
		if s.ReplaceID != "" {
			k.removeContainer(ctx, s.ReplaceID)
		}
		if s.Restart {
			key := backoffKey(pod.UID, s.Name)
			if s.ResetBackoff {
				k.backoff.reset(key)
			}
			k.backoff.next(key, s.ExitedAt)
		}
		d, err := k.startContainer(ctx, w, pod, c, sb, state, env, volumes, s.Type.IsInit())
		requeue(d)
		if err != nil && s.Type == planner.Ephemeral {
			if ctx.Err() == nil {
				k.log.Warn("start ephemeral container", "pod", podKey(pod), "container", s.Name, "err", err)
			}
			continue
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return next, firstErr
}

// specContainer finds a container of any type in the pod's spec by name.
func specContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	if ec := ephemeralContainer(pod, name); ec != nil {
		return (*v1.Container)(&ec.EphemeralContainerCommon)
	}
	return nil
}

// Upstream's status for a pod that ran past its activeDeadlineSeconds.
const (
	reasonDeadlineExceeded  = "DeadlineExceeded"
	messageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
)

// failPod ends a pod that must not run any longer: its containers stop
// within the pod's grace period and its status turns Failed with the
// reason, which then keeps it from starting again.
func (k *Kubelet) failPod(ctx context.Context, w *podWorker, pod *v1.Pod, reason, message string) (time.Duration, bool) {
	if w.failure == nil {
		k.recorder.Eventf(pod, v1.EventTypeWarning, reason, "%s", message)
		w.failure = &waitingReason{reason, message}
	}
	if err := k.killPod(ctx, pod, gracePeriod(pod), false); err != nil {
		k.log.Warn("kill pod", "pod", podKey(pod), "reason", reason, "err", err)
		return retrySoon, false
	}
	state, err := k.runtime.podState(ctx, pod.UID)
	if err != nil {
		return retrySoon, false
	}
	k.probes.removePod(pod.UID)
	k.writeStatus(ctx, w, pod, state, nil)
	return 0, false
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
