package kubelet

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func TestDecideResize(t *testing.T) {
	node := rl("2", "1Gi")
	for _, tc := range []struct {
		name            string
		desired, others v1.ResourceList
		accept          bool
		reason, message string
	}{
		{"fits", rl("500m", "100Mi"), rl("1", "200Mi"), true, "", ""},
		{"exactly fills the node", rl("1", ""), rl("1", ""), true, "", ""},
		{"more cpu than the node has", rl("3", ""), nil, false, v1.PodReasonInfeasible,
			"Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000"},
		{"room taken by others", rl("1500m", ""), rl("1", ""), false, v1.PodReasonDeferred,
			"Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000"},
		{"memory checked too", rl("", "2Gi"), nil, false, v1.PodReasonInfeasible,
			"Node didn't have enough capacity: memory, requested: 2147483648, capacity: 1073741824"},
	} {
		d := decideResize(tc.desired, tc.others, node)
		if d.accept != tc.accept || d.reason != tc.reason || d.message != tc.message {
			t.Errorf("%s: got %+v, want accept=%v %q %q", tc.name, d, tc.accept, tc.reason, tc.message)
		}
	}
}

func TestNeedsRestart(t *testing.T) {
	restartMem := &v1.Container{ResizePolicy: []v1.ContainerResizePolicy{
		{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired},
		{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer},
	}}
	req := func(cpu, mem string) v1.ResourceRequirements {
		return v1.ResourceRequirements{Requests: rl(cpu, mem), Limits: rl(cpu, mem)}
	}
	for _, tc := range []struct {
		name       string
		c          *v1.Container
		have, want v1.ResourceRequirements
		restart    bool
	}{
		{"cpu change in place", restartMem, req("100m", "64Mi"), req("200m", "64Mi"), false},
		{"memory change restarts", restartMem, req("100m", "64Mi"), req("100m", "128Mi"), true},
		{"no policy: in place", &v1.Container{}, req("100m", "64Mi"), req("100m", "128Mi"), false},
	} {
		if got := needsRestart(tc.c, tc.have, tc.want); got != tc.restart {
			t.Errorf("%s: needsRestart = %v, want %v", tc.name, got, tc.restart)
		}
	}
}

func TestContainerHashIgnoresResources(t *testing.T) {
	base := v1.Container{Name: "c", Image: "busybox"}
	sized := base
	sized.Resources = v1.ResourceRequirements{Requests: rl("100m", "")}
	sized.ResizePolicy = []v1.ContainerResizePolicy{{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired}}
	if containerHash(&base) != containerHash(&sized) {
		t.Error("a resize changed the container hash: the container would be restarted")
	}
	other := base
	other.Image = "busybox:1.36"
	if containerHash(&base) == containerHash(&other) {
		t.Error("an image change kept the container hash: the container would not be restarted")
	}
}

func TestDefinitionUnchangedAcceptsPreResizeHashes(t *testing.T) {
	sized := v1.Container{Name: "c", Image: "busybox", Resources: v1.ResourceRequirements{Requests: rl("100m", "")}}
	// What an agent from before in-place resize labelled the container with.
	old := hashJSON(&sized)
	if !definitionUnchanged(old, &sized) {
		t.Error("an upgraded agent would restart a container created by the previous version")
	}
	if !definitionUnchanged(containerHash(&sized), &sized) {
		t.Error("the current hash does not match its own container")
	}
	changed := sized
	changed.Image = "busybox:1.36"
	if definitionUnchanged(old, &changed) || definitionUnchanged(containerHash(&sized), &changed) {
		t.Error("an image change went unnoticed")
	}
}

func TestAllocationCheckpoint(t *testing.T) {
	dir := t.TempDir()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1"}, Spec: v1.PodSpec{Containers: []v1.Container{
		{Name: "app", Resources: v1.ResourceRequirements{Requests: rl("100m", "")}},
	}}}
	k := &Kubelet{alloc: newAllocations(dir)}
	if err := k.ensureAllocation(pod); err != nil {
		t.Fatal(err)
	}
	// The spec changes (a resize not yet admitted): the allocation stays.
	resized := pod.DeepCopy()
	resized.Spec.Containers[0].Resources.Requests = rl("300m", "")
	got := k.allocatedResources(resized, &resized.Spec.Containers[0])
	if q := got.Requests[v1.ResourceCPU]; q.String() != "100m" {
		t.Fatalf("allocated cpu = %s before admission, want 100m", q.String())
	}
	// A restarted kubelet reads the checkpoint.
	k2 := &Kubelet{alloc: newAllocations(dir)}
	got = k2.allocatedResources(resized, &resized.Spec.Containers[0])
	if q := got.Requests[v1.ResourceCPU]; q.String() != "100m" {
		t.Fatalf("allocated cpu after restart = %s, want 100m", q.String())
	}
	k2.alloc.forget(pod.UID)
	k3 := &Kubelet{alloc: newAllocations(dir)}
	got = k3.allocatedResources(resized, &resized.Spec.Containers[0])
	if q := got.Requests[v1.ResourceCPU]; q.String() != "300m" {
		t.Fatalf("allocated cpu of a forgotten pod = %s, want the spec's 300m", q.String())
	}
}

func TestResizeConditionsAreKubeletOwned(t *testing.T) {
	old := []v1.PodCondition{
		{Type: v1.PodScheduled, Status: v1.ConditionTrue},
		{Type: v1.PodResizeInProgress, Status: v1.ConditionTrue},
		{Type: v1.PodResizePending, Status: v1.ConditionTrue, Reason: v1.PodReasonDeferred},
	}
	ours := []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
	got := mergeForeignConditions(old, ours)
	want := []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}, {Type: v1.PodScheduled, Status: v1.ConditionTrue}}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("conditions = %v, want the finished resize's conditions dropped: %v", got, want)
	}
}

func TestAdjustEphemeralConfig(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{
		Containers: []v1.Container{{Name: "app"}},
		EphemeralContainers: []v1.EphemeralContainer{
			{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "debugger"}, TargetContainerName: "app"},
			{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "loose"}},
		},
	}}
	state := &podRuntime{containers: []*runtimeapi.Container{
		{Id: "app-1", PodSandboxId: "sb", Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	}}
	cfg := func(name string) *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Labels:   map[string]string{labelContainerType: "app"},
			Linux: &runtimeapi.LinuxContainerConfig{
				Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 1 << 20, OomScoreAdj: 1000},
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}},
			},
		}
	}
	for _, tc := range []struct {
		name, container, kind string
		pid                   runtimeapi.NamespaceMode
		target                string
		shares                int64
	}{
		{"targeted ephemeral joins the target's pid namespace", "debugger", containerTypeEphemeral, runtimeapi.NamespaceMode_TARGET, "app-1", minShares},
		{"untargeted ephemeral keeps its own", "loose", containerTypeEphemeral, runtimeapi.NamespaceMode_CONTAINER, "", minShares},
		{"app container untouched", "app", "app", runtimeapi.NamespaceMode_CONTAINER, "", 512},
	} {
		c := cfg(tc.container)
		adjustEphemeralConfig(pod, c, state, "sb")
		ns := c.Linux.SecurityContext.NamespaceOptions
		if c.Labels[labelContainerType] != tc.kind || ns.Pid != tc.pid || ns.TargetId != tc.target || c.Linux.Resources.CpuShares != tc.shares {
			t.Errorf("%s: type %s pid %v target %q shares %d", tc.name, c.Labels[labelContainerType], ns.Pid, ns.TargetId, c.Linux.Resources.CpuShares)
		}
	}
}

func TestSandboxOverhead(t *testing.T) {
	if sandboxOverhead(&v1.Pod{}) != nil {
		t.Error("a pod without overhead got sandbox overhead")
	}
	pod := &v1.Pod{Spec: v1.PodSpec{Overhead: rl("250m", "120Mi"), RuntimeClassName: ptr.To("kata")}}
	o := sandboxOverhead(pod)
	if o == nil || o.CpuShares != 256 || o.CpuQuota != 25000 || o.MemoryLimitInBytes != 120<<20 {
		t.Errorf("overhead = %+v, want 256 shares, 25000 quota, 120Mi", o)
	}
}

func TestResizeSummary(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Spec: v1.PodSpec{Containers: []v1.Container{
		{Name: "app", Resources: v1.ResourceRequirements{Requests: rl("200m", "")}}}}}
	got := resizeSummary(pod, "")
	if !strings.Contains(got, `"containers":[{"name":"app","resources":{"requests":{"cpu":"200m"}}}]`) || !strings.Contains(got, `"generation":3`) {
		t.Errorf("summary = %s", got)
	}
}
