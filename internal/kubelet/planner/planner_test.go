package planner

import (
	"reflect"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	running = runtimeapi.ContainerState_CONTAINER_RUNNING
	exited  = runtimeapi.ContainerState_CONTAINER_EXITED
	created = runtimeapi.ContainerState_CONTAINER_CREATED
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pod builds a pod with the given restart policy; each name is a regular
// container unless prefixed "init:", "side:" (sidecar) or "eph:".
func pod(policy v1.RestartPolicy, names ...string) *v1.Pod {
	p := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: policy}}
	always := v1.ContainerRestartPolicyAlways
	for _, n := range names {
		switch {
		case len(n) > 5 && n[:5] == "init:":
			p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: n[5:]})
		case len(n) > 5 && n[:5] == "side:":
			p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: n[5:], RestartPolicy: &always})
		case len(n) > 4 && n[:4] == "eph:":
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: n[4:]}})
		default:
			p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: n})
		}
	}
	return p
}

func ready(id string) []Sandbox { return []Sandbox{{ID: id, Ready: true}} }

func run(name string) Container {
	return Container{ID: name + "-1", Name: name, SandboxID: "sb", State: running}
}

// exit is an instance that ran 1 s and exited with code.
func exit(name string, code int32) Container {
	return Container{ID: name + "-1", Name: name, SandboxID: "sb", State: exited, ExitCode: code,
		StartedAt: t0.Add(-time.Second), FinishedAt: t0}
}

func restartOf(name string, t Type) Start {
	return Start{Name: name, Type: t, Restart: true, ExitedAt: t0}
}

func TestCompute(t *testing.T) {
	noWait := func(string, time.Time) time.Duration { return 0 }
	inBackoff := func(string, time.Time) time.Duration { return 20 * time.Second }
	longRun := exit("app", 1)
	longRun.StartedAt = t0.Add(-11 * time.Minute)

	tests := []struct {
		name       string
		pod        *v1.Pod
		sandboxes  []Sandbox
		containers []Container
		verdicts   map[string]Verdict
		backoff    func(string, time.Time) time.Duration
		changed    bool // SpecChanged answers true
		want       Plan
	}{
		{name: "new pod gets a sandbox", pod: pod(v1.RestartPolicyAlways, "app"),
			want: Plan{KillPod: true, CreateSandbox: true}},
		{name: "dead sandbox is replaced with the next attempt", pod: pod(v1.RestartPolicyAlways, "app"),
			sandboxes: []Sandbox{{ID: "sb2"}, {ID: "sb1"}}, containers: []Container{run("app")},
			want: Plan{KillPod: true, CreateSandbox: true, SandboxAttempt: 2}},
		{name: "Never pod whose containers exited in a dead sandbox stays down", pod: pod(v1.RestartPolicyNever, "app"),
			sandboxes: []Sandbox{{ID: "sb"}}, containers: []Container{exit("app", 0)}, want: Plan{}},
		{name: "OnFailure pod in a dead sandbox gets a new one", pod: pod(v1.RestartPolicyOnFailure, "app"),
			sandboxes: []Sandbox{{ID: "sb"}}, containers: []Container{exit("app", 0)},
			want: Plan{KillPod: true, CreateSandbox: true, SandboxAttempt: 1}},
		{name: "Never pod with a running container in a dead sandbox gets a new one", pod: pod(v1.RestartPolicyNever, "app"),
			sandboxes: []Sandbox{{ID: "sb"}}, containers: []Container{run("app")},
			want: Plan{KillPod: true, CreateSandbox: true, SandboxAttempt: 1}},
		{name: "regular containers all start", pod: pod(v1.RestartPolicyAlways, "a", "b"), sandboxes: ready("sb"),
			want: Plan{SandboxID: "sb", Start: []Start{{Name: "a"}, {Name: "b"}}}},
		{name: "running containers are left alone", pod: pod(v1.RestartPolicyAlways, "a"), sandboxes: ready("sb"),
			containers: []Container{run("a")}, want: Plan{SandboxID: "sb"}},
		{name: "containers of an old sandbox do not count", pod: pod(v1.RestartPolicyAlways, "a"),
			sandboxes: []Sandbox{{ID: "new", Ready: true}, {ID: "sb"}}, containers: []Container{run("a")},
			want: Plan{SandboxID: "new", Start: []Start{{Name: "a"}}}},
		{name: "init container starts first, alone", pod: pod(v1.RestartPolicyAlways, "init:i1", "init:i2", "app"), sandboxes: ready("sb"),
			want: Plan{SandboxID: "sb", Start: []Start{{Name: "i1", Type: Init}}}},
		{name: "running init container is awaited", pod: pod(v1.RestartPolicyAlways, "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{run("i1")}, want: Plan{SandboxID: "sb"}},
		{name: "next init container after a success", pod: pod(v1.RestartPolicyAlways, "init:i1", "init:i2", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("i1", 0)}, want: Plan{SandboxID: "sb", Start: []Start{{Name: "i2", Type: Init}}}},
		{name: "regular containers after all init containers", pod: pod(v1.RestartPolicyAlways, "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("i1", 0)}, want: Plan{SandboxID: "sb", Start: []Start{{Name: "app"}}}},
		{name: "failed init container, Never: pod failed, nothing starts", pod: pod(v1.RestartPolicyNever, "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("i1", 1)}, backoff: noWait, want: Plan{SandboxID: "sb"}},
		{name: "failed init container, OnFailure: restarted", pod: pod(v1.RestartPolicyOnFailure, "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("i1", 1)}, backoff: noWait, want: Plan{SandboxID: "sb", Start: []Start{restartOf("i1", Init)}}},
		{name: "failed init container, Always: restarted", pod: pod(v1.RestartPolicyAlways, "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("i1", 1)}, backoff: noWait, want: Plan{SandboxID: "sb", Start: []Start{restartOf("i1", Init)}}},
		{name: "failed init container in backoff waits", pod: pod(v1.RestartPolicyAlways, "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("i1", 1)}, backoff: inBackoff,
			want: Plan{SandboxID: "sb", Wait: []Wait{{Name: "i1", Retry: 20 * time.Second}}, Requeue: 20 * time.Second}},
		{name: "init container created but never started is replaced", pod: pod(v1.RestartPolicyAlways, "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{{ID: "x", Name: "i1", SandboxID: "sb", State: created}},
			want:       Plan{SandboxID: "sb", Start: []Start{{Name: "i1", Type: Init, ReplaceID: "x"}}}},
		{name: "sidecar starts in init order", pod: pod(v1.RestartPolicyNever, "side:s", "init:i1", "app"), sandboxes: ready("sb"),
			want: Plan{SandboxID: "sb", Start: []Start{{Name: "s", Type: Sidecar}}}},
		{name: "running sidecar lets the next init container start", pod: pod(v1.RestartPolicyNever, "side:s", "init:i1", "app"), sandboxes: ready("sb"),
			containers: []Container{run("s")}, want: Plan{SandboxID: "sb", Start: []Start{{Name: "i1", Type: Init}}}},
		{name: "sidecar runs beside regular containers", pod: pod(v1.RestartPolicyNever, "side:s", "app"), sandboxes: ready("sb"),
			containers: []Container{run("s"), run("app")}, want: Plan{SandboxID: "sb"}},
		{name: "exited sidecar restarts even under Never", pod: pod(v1.RestartPolicyNever, "side:s", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("s", 0), run("app")}, backoff: noWait,
			want: Plan{SandboxID: "sb", Start: []Start{restartOf("s", Sidecar)}}},
		{name: "exited sidecar under OnFailure restarts after success too", pod: pod(v1.RestartPolicyOnFailure, "side:s", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("s", 0)}, backoff: noWait,
			want: Plan{SandboxID: "sb", Start: []Start{restartOf("s", Sidecar)}}},
		{name: "crashing sidecar in backoff holds the regular containers", pod: pod(v1.RestartPolicyAlways, "side:s", "app"), sandboxes: ready("sb"),
			containers: []Container{exit("s", 1)}, backoff: inBackoff,
			want: Plan{SandboxID: "sb", Wait: []Wait{{Name: "s", Retry: 20 * time.Second}}, Requeue: 20 * time.Second}},
		{name: "sidecar failing liveness is killed", pod: pod(v1.RestartPolicyAlways, "side:s", "app"), sandboxes: ready("sb"),
			containers: []Container{run("s"), run("app")}, verdicts: map[string]Verdict{"s-1": {LivenessFailed: true}},
			want: Plan{SandboxID: "sb", Kill: []Kill{{ID: "s-1", Name: "s", Type: Sidecar, Reason: "it failed its liveness or startup probe"}}, Requeue: KillRequeue}},
		{name: "Always restarts a success", pod: pod(v1.RestartPolicyAlways, "app"), sandboxes: ready("sb"),
			containers: []Container{exit("app", 0)}, backoff: noWait, want: Plan{SandboxID: "sb", Start: []Start{restartOf("app", Regular)}}},
		{name: "Always restarts a failure", pod: pod(v1.RestartPolicyAlways, "app"), sandboxes: ready("sb"),
			containers: []Container{exit("app", 2)}, backoff: noWait, want: Plan{SandboxID: "sb", Start: []Start{restartOf("app", Regular)}}},
		{name: "OnFailure leaves a success", pod: pod(v1.RestartPolicyOnFailure, "app"), sandboxes: ready("sb"),
			containers: []Container{exit("app", 0)}, backoff: noWait, want: Plan{SandboxID: "sb"}},
		{name: "OnFailure restarts a failure", pod: pod(v1.RestartPolicyOnFailure, "app"), sandboxes: ready("sb"),
			containers: []Container{exit("app", 1)}, backoff: noWait, want: Plan{SandboxID: "sb", Start: []Start{restartOf("app", Regular)}}},
		{name: "Never leaves a failure", pod: pod(v1.RestartPolicyNever, "app"), sandboxes: ready("sb"),
			containers: []Container{exit("app", 1)}, backoff: noWait, want: Plan{SandboxID: "sb"}},
		{name: "Never leaves a success", pod: pod(v1.RestartPolicyNever, "app"), sandboxes: ready("sb"),
			containers: []Container{exit("app", 0)}, backoff: noWait, want: Plan{SandboxID: "sb"}},
		{name: "crash loop waits and others still start", pod: pod(v1.RestartPolicyAlways, "app", "other"), sandboxes: ready("sb"),
			containers: []Container{exit("app", 1)}, backoff: inBackoff,
			want: Plan{SandboxID: "sb", Start: []Start{{Name: "other"}}, Wait: []Wait{{Name: "app", Retry: 20 * time.Second}}, Requeue: 20 * time.Second}},
		{name: "a ten-minute run resets the backoff", pod: pod(v1.RestartPolicyAlways, "app"), sandboxes: ready("sb"),
			containers: []Container{longRun}, backoff: inBackoff,
			want: Plan{SandboxID: "sb", Start: []Start{{Name: "app", Restart: true, ExitedAt: t0, ResetBackoff: true}}}},
		{name: "regular container created but never started is replaced", pod: pod(v1.RestartPolicyNever, "app"), sandboxes: ready("sb"),
			containers: []Container{{ID: "x", Name: "app", SandboxID: "sb", State: created}},
			want:       Plan{SandboxID: "sb", Start: []Start{{Name: "app", ReplaceID: "x"}}}},
		{name: "liveness failure kills under Never too", pod: pod(v1.RestartPolicyNever, "app"), sandboxes: ready("sb"),
			containers: []Container{run("app")}, verdicts: map[string]Verdict{"app-1": {LivenessFailed: true}},
			want: Plan{SandboxID: "sb", Kill: []Kill{{ID: "app-1", Name: "app", Reason: "it failed its liveness or startup probe"}}, Requeue: KillRequeue}},
		{name: "changed definition kills", pod: pod(v1.RestartPolicyAlways, "app"), sandboxes: ready("sb"),
			containers: []Container{run("app")}, changed: true,
			want: Plan{SandboxID: "sb", Kill: []Kill{{ID: "app-1", Name: "app", Reason: "its definition changed"}}, Requeue: KillRequeue}},
		{name: "resize with RestartContainer policy kills", pod: pod(v1.RestartPolicyAlways, "app"), sandboxes: ready("sb"),
			containers: []Container{run("app")}, verdicts: map[string]Verdict{"app-1": {ResizeNeedsRestart: true}},
			want: Plan{SandboxID: "sb", Kill: []Kill{{ID: "app-1", Name: "app", Reason: "its resize requires a restart"}}, Requeue: KillRequeue}},
		{name: "in-place resize keeps the container", pod: pod(v1.RestartPolicyAlways, "app"), sandboxes: ready("sb"),
			containers: []Container{run("app")}, verdicts: map[string]Verdict{"app-1": {}}, want: Plan{SandboxID: "sb"}},
		{name: "ephemeral container starts beside a running pod", pod: pod(v1.RestartPolicyAlways, "app", "eph:dbg"), sandboxes: ready("sb"),
			containers: []Container{run("app")}, want: Plan{SandboxID: "sb", Start: []Start{{Name: "dbg", Type: Ephemeral}}}},
		{name: "ephemeral container starts even while init containers run", pod: pod(v1.RestartPolicyAlways, "init:i1", "app", "eph:dbg"), sandboxes: ready("sb"),
			containers: []Container{run("i1")}, want: Plan{SandboxID: "sb", Start: []Start{{Name: "dbg", Type: Ephemeral}}}},
		{name: "exited ephemeral container is not restarted", pod: pod(v1.RestartPolicyAlways, "app", "eph:dbg"), sandboxes: ready("sb"),
			containers: []Container{run("app"), exit("dbg", 1)}, backoff: noWait, want: Plan{SandboxID: "sb"}},
		{name: "ephemeral container of an old sandbox is not run again", pod: pod(v1.RestartPolicyAlways, "app", "eph:dbg"),
			sandboxes: []Sandbox{{ID: "new", Ready: true}, {ID: "sb"}}, containers: []Container{exit("dbg", 0)},
			want: Plan{SandboxID: "new", Start: []Start{{Name: "app"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Pod: tc.pod, Sandboxes: tc.sandboxes, Containers: tc.containers, Verdicts: tc.verdicts, Backoff: tc.backoff}
			if tc.changed {
				in.SpecChanged = func(string, *v1.Container) bool { return true }
			}
			got := Compute(in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestComputeEveryPolicyAndType checks the exit rule for every restart
// policy and container type, with and without a failure.
func TestComputeEveryPolicyAndType(t *testing.T) {
	policies := []v1.RestartPolicy{v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever}
	for _, policy := range policies {
		for _, code := range []int32{0, 1} {
			for _, typ := range []Type{Regular, Init, Sidecar, Ephemeral} {
				var p *v1.Pod
				switch typ {
				case Regular:
					p = pod(policy, "c")
				case Init:
					p = pod(policy, "init:c", "app")
				case Sidecar:
					p = pod(policy, "side:c", "app")
				case Ephemeral:
					p = pod(policy, "app", "eph:c")
				}
				cs := []Container{exit("c", code)}
				if typ == Ephemeral {
					cs = append(cs, run("app"))
				}
				plan := Compute(Input{Pod: p, Sandboxes: ready("sb"), Containers: cs})
				var want bool // is c restarted?
				switch typ {
				case Sidecar:
					want = true
				case Ephemeral:
					want = false
				case Init:
					want = code != 0 && policy != v1.RestartPolicyNever
				default:
					want = ShouldRestart(policy, code)
				}
				restarted := false
				for _, s := range plan.Start {
					if s.Name == "c" {
						restarted = s.Restart && s.Type == typ
					}
				}
				if restarted != want {
					t.Errorf("%s %s exit %d: restarted %v, want %v (plan %+v)", policy, typ, code, restarted, want, plan)
				}
				// A successful init container lets the app start.
				if typ == Init && code == 0 && (len(plan.Start) != 1 || plan.Start[0].Name != "app") {
					t.Errorf("%s init success: plan %+v, want app started", policy, plan)
				}
			}
		}
	}
}

func TestLifecycle(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name    string
		pod     v1.Pod
		removed bool
		want    Action
	}{
		{"running", v1.Pod{Status: v1.PodStatus{Phase: v1.PodRunning}}, false, Run},
		{"pending", v1.Pod{}, false, Run},
		{"succeeded", v1.Pod{Status: v1.PodStatus{Phase: v1.PodSucceeded}}, false, StopSandbox},
		{"failed", v1.Pod{Status: v1.PodStatus{Phase: v1.PodFailed}}, false, StopSandbox},
		{"deleting", v1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: v1.PodStatus{Phase: v1.PodRunning}}, false, Terminate},
		{"deleting a finished pod", v1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: v1.PodStatus{Phase: v1.PodSucceeded}}, false, Terminate},
		{"gone from the API", v1.Pod{}, true, Terminate},
	}
	for _, tc := range tests {
		if got := Lifecycle(&tc.pod, tc.removed); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPlanHelpers(t *testing.T) {
	if !(&Plan{}).Empty() || (&Plan{Start: []Start{{}}}).Empty() {
		t.Error("Empty is wrong")
	}
	if Sidecar.String() != "sidecar" || !Sidecar.IsInit() || Regular.IsInit() || Ephemeral.IsInit() {
		t.Error("Type helpers are wrong")
	}
}

func TestActiveDeadline(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := func(deadline *int64, started bool) *v1.Pod {
		p := &v1.Pod{Spec: v1.PodSpec{ActiveDeadlineSeconds: deadline}}
		if started {
			p.Status.StartTime = &metav1.Time{Time: start}
		}
		return p
	}
	five := int64(5)
	for _, tc := range []struct {
		name     string
		pod      *v1.Pod
		now      time.Time
		exceeded bool
		left     time.Duration
	}{
		{"no deadline", pod(nil, true), start.Add(time.Hour), false, 0},
		{"not started", pod(&five, false), start.Add(time.Hour), false, 0},
		{"within", pod(&five, true), start.Add(2 * time.Second), false, 3 * time.Second},
		{"at the deadline", pod(&five, true), start.Add(5 * time.Second), true, 0},
		{"past it", pod(&five, true), start.Add(time.Minute), true, 0},
	} {
		exceeded, left := ActiveDeadline(tc.pod, tc.now)
		if exceeded != tc.exceeded || left != tc.left {
			t.Errorf("%s: ActiveDeadline = %v, %s; want %v, %s", tc.name, exceeded, left, tc.exceeded, tc.left)
		}
	}
}
