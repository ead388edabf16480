package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/internal/kubelet/planner"
)

// maxTerminationMessage is upstream's cap on a termination message.
const maxTerminationMessage = 4096

// writeStatus computes the pod's status from the runtime and writes it
// when it differs from what the API holds.
func (k *Kubelet) writeStatus(ctx context.Context, w *podWorker, pod *v1.Pod, state *podRuntime, volumes map[string]string) {
	status := k.podStatus(ctx, w, pod, state)
	// Measured from when this kubelet first saw the pod, as upstream; a pod
	// the API already shows Running was started before an agent restart.
	if status.Phase == v1.PodRunning && w.lastPhase != v1.PodRunning && pod.Status.Phase != v1.PodRunning {
		k.metrics.podStart.Observe(k.clock.Since(w.started).Seconds())
	}
	w.lastPhase = status.Phase
	for attempt := 0; attempt < 3; attempt++ {
		preserveTimes(&pod.Status, &status)
		if apiequality.Semantic.DeepEqual(pod.Status, status) {
			return
		}
		updated := pod.DeepCopy()
		updated.Status = status
		result, err := k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		if err == nil {
			w.mu.Lock()
			if w.pod != nil && w.pod.ResourceVersion == pod.ResourceVersion {
				w.pod = result
			}
			w.mu.Unlock()
			return
		}
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		if !apierrors.IsConflict(err) {
			k.log.Warn("update pod status", "pod", podKey(pod), "err", err)
			return
		}
		fresh, err := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || fresh.UID != pod.UID {
			return
		}
		pod = fresh
		status.Conditions = mergeForeignConditions(pod.Status.Conditions, status.Conditions)
	}
}

// podStatus shapes the status as upstream does: phase, conditions, IPs,
// and per-container states with restart counts.
func (k *Kubelet) podStatus(ctx context.Context, w *podWorker, pod *v1.Pod, state *podRuntime) v1.PodStatus {
	old := pod.Status
	s := v1.PodStatus{
		HostIP:            k.cfg.NodeIP.String(),
		HostIPs:           []v1.HostIP{{IP: k.cfg.NodeIP.String()}},
		QOSClass:          qosClass(pod),
		StartTime:         old.StartTime,
		NominatedNodeName: old.NominatedNodeName,
		// The spec this status reflects: clients wait for it after an
		// update (upstream's PodObservedGenerationTracking).
		ObservedGeneration: pod.Generation,
	}
	if s.StartTime == nil {
		now := metav1.NewTime(k.clock.Now())
		s.StartTime = &now
	}
	sb := state.readySandbox()
	if sb != nil {
		if ip, err := k.sandboxIP(ctx, pod, sb.Id); err == nil && ip != "" {
			s.PodIP = ip
			s.PodIPs = []v1.PodIP{{IP: ip}}
		}
	} else if old.Phase == v1.PodSucceeded || old.Phase == v1.PodFailed || pod.DeletionTimestamp != nil {
		s.PodIP, s.PodIPs = old.PodIP, old.PodIPs
	}
	sandboxID := ""
	if latest := state.latestSandbox(); latest != nil {
		sandboxID = latest.Id
	}

	initDone, initFailed := true, false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := k.containerStatus(ctx, w, pod, c, state, sandboxID)
		switch {
		case isSidecar(c):
			if cs.State.Running == nil {
				initDone = false
			}
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			cs.Ready = true // as upstream: an init container that succeeded is ready
		default:
			initDone = false
			if t := cs.State.Terminated; t != nil && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				initFailed = true
			}
			if cs.LastTerminationState.Terminated != nil && cs.State.Waiting != nil && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				initFailed = true
			}
		}
		s.InitContainerStatuses = append(s.InitContainerStatuses, cs)
	}
	allReady := true
	var notReady []string
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := k.containerStatus(ctx, w, pod, c, state, sandboxID)
		if !initDone && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ContainerCreating" {
			cs.State.Waiting.Reason = "PodInitializing"
		}
		if !cs.Ready {
			allReady = false
			notReady = append(notReady, c.Name)
		}
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	for i := range pod.Spec.EphemeralContainers {
		cs := k.containerStatus(ctx, w, pod, (*v1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon), state, sandboxID)
		cs.Ready = false // ephemeral containers serve nothing
		s.EphemeralContainerStatuses = append(s.EphemeralContainerStatuses, cs)
	}

	s.Phase = podPhase(pod, s.ContainerStatuses, initDone, initFailed)
	if f := w.failure; f != nil {
		s.Phase, s.Reason, s.Message = v1.PodFailed, f.reason, f.message
	}
	if old.Phase == v1.PodSucceeded || old.Phase == v1.PodFailed {
		s.Phase = old.Phase // terminal phases never change
	}
	now := metav1.NewTime(k.clock.Now())
	cond := func(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
		c := v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastTransitionTime: now, ObservedGeneration: pod.Generation}
		if !ok {
			c.Status, c.Reason, c.Message = v1.ConditionFalse, reason, msg
		}
		return c
	}
	completed := s.Phase == v1.PodSucceeded || s.Phase == v1.PodFailed
	readyReason, readyMsg := "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " "))
	if completed {
		readyReason, readyMsg = "PodCompleted", ""
	}
	initReason, initMsg := "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incompleteInits(pod, s.InitContainerStatuses), " "))
	if completed && initDone {
		initReason = "PodCompleted"
	}
	s.Conditions = []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, sb != nil, "", ""),
		cond(v1.PodInitialized, initDone, initReason, initMsg),
		cond(v1.ContainersReady, allReady && initDone && !completed, readyReason, readyMsg),
		cond(v1.PodReady, allReady && initDone && !completed && readinessGatesPass(pod), readyReason, readyMsg),
	}
	s.Conditions = append(s.Conditions, k.resizeConditions(pod)...)
	s.Conditions = mergeForeignConditions(old.Conditions, s.Conditions)
	return s
}

func incompleteInits(pod *v1.Pod, statuses []v1.ContainerStatus) []string {
	var out []string
	for _, cs := range statuses {
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			out = append(out, cs.Name)
		}
	}
	return out
}

func readinessGatesPass(pod *v1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		ok := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == v1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// mergeForeignConditions keeps the conditions other components own
// (PodScheduled, DisruptionTarget, readiness gates), followed by ours.
func mergeForeignConditions(old, ours []v1.PodCondition) []v1.PodCondition {
	owned := map[v1.PodConditionType]bool{}
	for _, c := range ours {
		owned[c.Type] = true
	}
	var out []v1.PodCondition
	for _, c := range old {
		// Resize conditions are the kubelet's even when absent from ours.
		if !owned[c.Type] && !isResizeCondition(c.Type) {
			out = append(out, c)
		}
	}
	out = append(out, ours...)
	order := map[v1.PodConditionType]int{v1.PodReadyToStartContainers: 0, v1.PodInitialized: 1, v1.PodReady: 2, v1.ContainersReady: 3, v1.PodScheduled: 4}
	sort.SliceStable(out, func(i, j int) bool {
		oi, iok := order[out[i].Type]
		oj, jok := order[out[j].Type]
		if !iok {
			oi = 10
		}
		if !jok {
			oj = 10
		}
		return oi < oj
	})
	return out
}

// preserveTimes keeps transition times of conditions whose status did not
// change, so an unchanged status compares equal and is not rewritten.
func preserveTimes(old, s *v1.PodStatus) {
	for i := range s.Conditions {
		for _, o := range old.Conditions {
			if o.Type == s.Conditions[i].Type && o.Status == s.Conditions[i].Status {
				s.Conditions[i].LastTransitionTime = o.LastTransitionTime
				s.Conditions[i].LastProbeTime = o.LastProbeTime
			}
		}
	}
}

// podPhase follows upstream's rules: Pending until initialised and every
// container has started once; Running while any runs or will restart;
// Succeeded or Failed once all have terminated for good.
func podPhase(pod *v1.Pod, statuses []v1.ContainerStatus, initDone, initFailed bool) v1.PodPhase {
	if initFailed {
		return v1.PodFailed
	}
	if !initDone {
		return v1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
				if cs.LastTerminationState.Terminated.ExitCode == 0 {
					succeeded++
				}
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		switch pod.Spec.RestartPolicy {
		case v1.RestartPolicyAlways:
			return v1.PodRunning
		case v1.RestartPolicyOnFailure:
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodRunning
		default:
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodFailed
		}
	}
	return v1.PodPending
}

// containerStatus reports one container from its newest instance (state)
// and the one before (lastState).
func (k *Kubelet) containerStatus(ctx context.Context, w *podWorker, pod *v1.Pod, c *v1.Container, state *podRuntime, sandboxID string) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(bool), AllocatedResources: k.allocatedRequests(pod, c)}
	inst := state.instances(c.Name, "")
	waiting, hasWaiting := w.waiting[c.Name]
	if len(inst) == 0 {
		// As upstream: a container not created yet waits with
		// ContainerCreating, or PodInitializing in a pod with init
		// containers (init containers included).
		reason := "ContainerCreating"
		if len(pod.Spec.InitContainers) > 0 {
			reason = "PodInitializing"
		}
		msg := ""
		if hasWaiting {
			reason, msg = waiting.reason, waiting.message
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: msg}
		return cs
	}
	latest := inst[0]
	cs.RestartCount = int32(latest.Metadata.GetAttempt())
	cs.ContainerID = "containerd://" + latest.Id
	cs.ImageID = latest.ImageRef
	if img := latest.GetImage(); img != nil && img.UserSpecifiedImage != "" {
		cs.Image = img.UserSpecifiedImage
	}
	st, err := k.runtime.containerStatus(ctx, latest.Id)
	if err != nil {
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
		return cs
	}
	if st.ImageRef != "" {
		cs.ImageID = st.ImageRef
	}
	current := k.containerState(pod, c, st)
	stale := latest.PodSandboxId != sandboxID // from a sandbox that has been replaced
	switch {
	case current.Running != nil && !stale:
		cs.State = current
		*cs.Started = true
		k.resourceStatus(pod, c, latest.Id, &cs)
		res, ok := k.probes.result(latest.Id)
		cs.Ready = ok && res.ready
		if ok && !res.started {
			*cs.Started = false
		}
		if len(inst) > 1 {
			if prev, err := k.runtime.containerStatus(ctx, inst[1].Id); err == nil {
				cs.LastTerminationState = k.containerState(pod, c, prev)
			}
		}
	case current.Terminated != nil && hasWaiting:
		// Exited and waiting to restart (CrashLoopBackOff and the like).
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: waiting.reason, Message: waiting.message}
		cs.LastTerminationState = current
	case current.Terminated != nil && planner.ShouldRestart(pod.Spec.RestartPolicy, current.Terminated.ExitCode) && pod.DeletionTimestamp == nil &&
		pod.Status.Phase != v1.PodSucceeded && pod.Status.Phase != v1.PodFailed && !isInitDone(pod, c, current) &&
		ephemeralContainer(pod, c.Name) == nil:
		// About to be restarted by the next sync.
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
		cs.LastTerminationState = current
	default:
		cs.State = current
		if current.Waiting != nil && hasWaiting {
			cs.State.Waiting = &v1.ContainerStateWaiting{Reason: waiting.reason, Message: waiting.message}
		}
	}
	return cs
}

// isInitDone says an init container exited successfully and will not run
// again.
func isInitDone(pod *v1.Pod, c *v1.Container, s v1.ContainerState) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return s.Terminated != nil && s.Terminated.ExitCode == 0
		}
	}
	return false
}

func (k *Kubelet) containerState(pod *v1.Pod, c *v1.Container, st *runtimeapi.ContainerStatus) v1.ContainerState {
	id := "containerd://" + st.Id
	switch st.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, st.StartedAt))}}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		t := &v1.ContainerStateTerminated{
			ExitCode:    st.ExitCode,
			Reason:      st.Reason,
			Message:     st.Message,
			StartedAt:   metav1.NewTime(time.Unix(0, st.StartedAt)),
			FinishedAt:  metav1.NewTime(time.Unix(0, st.FinishedAt)),
			ContainerID: id,
		}
		if t.Reason == "" {
			t.Reason = "Completed"
			if t.ExitCode != 0 {
				t.Reason = "Error"
			}
		}
		if msg := k.terminationMessage(pod, c, st); msg != "" {
			t.Message = msg
		}
		return v1.ContainerState{Terminated: t}
	}
	return v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}
}

// Upstream's bounds on a termination message taken from the log.
const (
	maxTerminationLogLines = 80
	maxTerminationLogBytes = 2048
)

// terminationMessage reads what the container wrote to its termination
// message path; with policy FallbackToLogsOnError, a failed container
// that wrote nothing there gets the tail of its log instead, as upstream.
func (k *Kubelet) terminationMessage(pod *v1.Pod, c *v1.Container, st *runtimeapi.ContainerStatus) string {
	data, err := os.ReadFile(k.terminationFile(pod.UID, c.Name, st.GetMetadata().GetAttempt()))
	if err == nil && len(data) > 0 {
		if len(data) > maxTerminationMessage {
			data = data[:maxTerminationMessage]
		}
		return string(data)
	}
	if c.TerminationMessagePolicy != v1.TerminationMessageFallbackToLogsOnError || st.ExitCode == 0 || st.LogPath == "" {
		return ""
	}
	return logTail(st.LogPath)
}

// logTail is the last lines of a CRI log file's text, bounded as upstream
// bounds a termination message taken from the log.
func logTail(path string) string {
	var out bytes.Buffer
	lw := &logWriter{out: &out, buffered: true, tail: maxTerminationLogLines}
	if _, err := lw.copyFile(path, 0); err != nil {
		return ""
	}
	if err := lw.flushTail(); err != nil {
		return ""
	}
	b := out.Bytes()
	if len(b) > maxTerminationLogBytes {
		b = b[len(b)-maxTerminationLogBytes:]
	}
	return string(b)
}
