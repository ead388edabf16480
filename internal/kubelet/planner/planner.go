// Package planner decides what the kubelet does for one pod. It is pure:
// from the pod, what the runtime holds for it and what probes and resize
// say about its running containers, Compute returns a Plan (kill the
// sandbox, create one, start the next init container, start, restart or
// kill containers and why). The kubelet's executor carries the plan out
// through the CRI interfaces. Keeping the decisions here lets every
// restart-policy and container-type combination be table-tested without a
// runtime.
package planner

import (
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BackoffResetAfter is how long a container must have run for its next
// restart to skip the crash-loop delay (upstream: 10 minutes).
const BackoffResetAfter = 10 * time.Minute

// KillRequeue is how soon to sync again after killing a container to
// restart it: the next plan decides about the restart from its exit.
const KillRequeue = 100 * time.Millisecond

// Sandbox is the runtime's view of one pod sandbox.
type Sandbox struct {
	ID    string
	Ready bool
}

// Container is the runtime's view of one container instance. ExitCode,
// StartedAt and FinishedAt matter only for exited instances.
type Container struct {
	ID, Name, SandboxID string
	State               runtimeapi.ContainerState
	Hash                string // the definition hash recorded at creation
	ExitCode            int32
	StartedAt           time.Time
	FinishedAt          time.Time
}

// Verdict is what the rest of the kubelet says about a running container.
type Verdict struct {
	// LivenessFailed: a liveness or startup probe failed its threshold.
	LivenessFailed bool
	// ResizeNeedsRestart: a resize changes a resource whose resize policy
	// is RestartContainer.
	ResizeNeedsRestart bool
}

// Input is everything Compute looks at.
type Input struct {
	Pod        *v1.Pod
	Sandboxes  []Sandbox   // newest first
	Containers []Container // newest first
	// Verdicts by container ID; missing means nothing to report.
	Verdicts map[string]Verdict
	// SpecChanged reports whether a container created with hash no longer
	// matches c (an image update); nil means never.
	SpecChanged func(hash string, c *v1.Container) bool
	// Backoff is how long a restart of the named container must still
	// wait after its last exit at finished; nil means no wait.
	Backoff func(name string, finished time.Time) time.Duration
}

// Type is the kind of a container in the pod's spec.
type Type int

const (
	Regular Type = iota
	Init
	Sidecar // an init container with restartPolicy Always
	Ephemeral
)

func (t Type) String() string {
	return [...]string{"regular", "init", "sidecar", "ephemeral"}[t]
}

// IsInit reports init containers, sidecars included, which run before
// the regular containers.
func (t Type) IsInit() bool { return t == Init || t == Sidecar }

// Start asks for one container to be created and started.
type Start struct {
	Name string
	Type Type
	// ReplaceID is an instance created but never started (a failed start)
	// to remove first.
	ReplaceID string
	// Restart is set when this replaces an exited instance: the executor
	// advances the crash-loop backoff from ExitedAt.
	Restart  bool
	ExitedAt time.Time
	// ResetBackoff: the last run lasted BackoffResetAfter; forget the delay.
	ResetBackoff bool
}

// Kill asks for a running container to be stopped (its preStop hook, then
// the grace period); Reason is for the event.
type Kill struct {
	ID, Name string
	Type     Type
	Reason   string
}

// Wait reports a container held back by its crash-loop backoff.
type Wait struct {
	Name  string
	Retry time.Duration
}

// Plan is what to do now for a pod that should run.
type Plan struct {
	// KillPod: stop every container and sandbox of the pod, then, with
	// CreateSandbox, start a new sandbox (attempt SandboxAttempt). The
	// executor plans again once the new sandbox is ready.
	KillPod        bool
	CreateSandbox  bool
	SandboxAttempt uint32
	// SandboxID is the ready sandbox the containers below belong to.
	SandboxID string
	Kill      []Kill
	Start     []Start
	Wait      []Wait
	// Requeue is when to plan again (0: at the next event or resync).
	Requeue time.Duration
}

// Empty reports a plan with nothing to do.
func (p *Plan) Empty() bool {
	return !p.KillPod && !p.CreateSandbox && len(p.Kill) == 0 && len(p.Start) == 0
}

func (p *Plan) requeue(d time.Duration) {
	if d > 0 && (p.Requeue == 0 || d < p.Requeue) {
		p.Requeue = d
	}
}

// Compute plans one step for a pod that should run (not deleted, not in a
// terminal phase; see Lifecycle).
func Compute(in Input) Plan {
	pod := in.Pod
	sb := in.readySandbox()
	if sb == nil {
		if in.podDone() {
			return Plan{}
		}
		// A new sandbox means new containers: whatever still runs in the
		// old one goes first.
		return Plan{KillPod: true, CreateSandbox: true, SandboxAttempt: uint32(len(in.Sandboxes))}
	}
	p := Plan{SandboxID: sb.ID}

	// Ephemeral containers run once, beside whatever else runs, and are
	// not restarted, not even in a new sandbox.
	for i := range pod.Spec.EphemeralContainers {
		name := pod.Spec.EphemeralContainers[i].Name
		if in.latest(name, "") == nil {
			p.Start = append(p.Start, Start{Name: name, Type: Ephemeral})
		}
	}

	// Init containers, in order, each to completion; a sidecar only has to
	// be running for the next one to start.
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		latest := in.latest(c.Name, sb.ID)
		if IsSidecar(c) {
			if latest != nil && latest.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				in.checkRunning(&p, c, latest, Sidecar)
				continue
			}
			in.ensureRunning(&p, c, latest, Sidecar)
			return p
		}
		if latest == nil {
			p.Start = append(p.Start, Start{Name: c.Name, Type: Init})
			return p
		}
		switch latest.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			return p // wait for it to finish
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			if latest.ExitCode == 0 {
				continue
			}
			if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				return p // the pod has failed; its status says so
			}
			in.restart(&p, c, latest, Init)
			return p
		default:
			p.Start = append(p.Start, Start{Name: c.Name, Type: Init, ReplaceID: latest.ID})
			return p
		}
	}

	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		latest := in.latest(c.Name, sb.ID)
		if latest != nil && latest.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			in.checkRunning(&p, c, latest, Regular)
			continue
		}
		in.ensureRunning(&p, c, latest, Regular)
	}
	return p
}

// checkRunning kills a running container that must restart.
func (in *Input) checkRunning(p *Plan, c *v1.Container, latest *Container, t Type) {
	v := in.Verdicts[latest.ID]
	reason := ""
	switch {
	case in.SpecChanged != nil && in.SpecChanged(latest.Hash, c):
		reason = "its definition changed"
	case v.LivenessFailed:
		reason = "it failed its liveness or startup probe"
	case v.ResizeNeedsRestart:
		reason = "its resize requires a restart"
	default:
		return
	}
	p.Kill = append(p.Kill, Kill{ID: latest.ID, Name: c.Name, Type: t, Reason: reason})
	p.requeue(KillRequeue)
}

// ensureRunning starts a container that is not running, as its restart
// policy allows.
func (in *Input) ensureRunning(p *Plan, c *v1.Container, latest *Container, t Type) {
	switch {
	case latest == nil:
		p.Start = append(p.Start, Start{Name: c.Name, Type: t})
	case latest.State == runtimeapi.ContainerState_CONTAINER_EXITED:
		policy := in.Pod.Spec.RestartPolicy
		if t == Sidecar {
			policy = v1.RestartPolicyAlways
		}
		if ShouldRestart(policy, latest.ExitCode) {
			in.restart(p, c, latest, t)
		}
	default:
		// Created but never started (a failed start): replace it.
		p.Start = append(p.Start, Start{Name: c.Name, Type: t, ReplaceID: latest.ID})
	}
}

// restart starts an exited container again unless it is inside its
// crash-loop backoff window.
func (in *Input) restart(p *Plan, c *v1.Container, exited *Container, t Type) {
	s := Start{Name: c.Name, Type: t, Restart: true, ExitedAt: exited.FinishedAt}
	if !exited.StartedAt.IsZero() && exited.FinishedAt.Sub(exited.StartedAt) >= BackoffResetAfter {
		s.ResetBackoff = true
		p.Start = append(p.Start, s)
		return
	}
	if in.Backoff != nil {
		if wait := in.Backoff(c.Name, exited.FinishedAt); wait > 0 {
			p.Wait = append(p.Wait, Wait{Name: c.Name, Retry: wait})
			p.requeue(wait)
			return
		}
	}
	p.Start = append(p.Start, s)
}

// ShouldRestart applies a restart policy to an exit code.
func ShouldRestart(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// IsSidecar reports an init container that keeps running beside the
// regular containers (restartPolicy Always).
func IsSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && strings.EqualFold(string(*c.RestartPolicy), string(v1.ContainerRestartPolicyAlways))
}

func (in *Input) readySandbox() *Sandbox {
	for i := range in.Sandboxes {
		if in.Sandboxes[i].Ready {
			return &in.Sandboxes[i]
		}
	}
	return nil
}

// latest is the newest instance of name, in sandbox sandboxID unless it is
// empty.
func (in *Input) latest(name, sandboxID string) *Container {
	for i := range in.Containers {
		c := &in.Containers[i]
		if c.Name == name && (sandboxID == "" || c.SandboxID == sandboxID) {
			return c
		}
	}
	return nil
}

// podDone reports a pod whose sandbox is gone and that will not run
// again: every regular container exited and restartPolicy is Never.
func (in *Input) podDone() bool {
	if len(in.Sandboxes) == 0 || in.Pod.Spec.RestartPolicy != v1.RestartPolicyNever {
		return false
	}
	newest := in.Sandboxes[0].ID
	for _, c := range in.Pod.Spec.Containers {
		l := in.latest(c.Name, newest)
		if l == nil || l.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return false
		}
	}
	return true
}

// Action is what to do with a pod as a whole.
type Action int

const (
	// Run: plan with Compute.
	Run Action = iota
	// StopSandbox: the pod finished (Succeeded or Failed); release its
	// sandbox and IP but keep the containers for their logs.
	StopSandbox
	// Terminate: the pod is being deleted (or is gone from the API):
	// kill everything.
	Terminate
)

// Lifecycle decides what to do with the pod as a whole; removed means
// the object is gone from the API.
func Lifecycle(pod *v1.Pod, removed bool) Action {
	switch {
	case removed || pod.DeletionTimestamp != nil:
		return Terminate
	case pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed:
		return StopSandbox
	}
	return Run
}

// ActiveDeadline reports whether the pod has been active on the node
// longer than its activeDeadlineSeconds, counted from its status's start
// time as upstream; otherwise left is how long it has (0: no deadline).
func ActiveDeadline(pod *v1.Pod, now time.Time) (exceeded bool, left time.Duration) {
	d := pod.Spec.ActiveDeadlineSeconds
	if d == nil || pod.Status.StartTime == nil {
		return false, 0
	}
	left = pod.Status.StartTime.Add(time.Duration(*d) * time.Second).Sub(now)
	if left <= 0 {
		return true, 0
	}
	return false, left
}
