package kubelet

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/kubelet/fakeruntime"
)

// harness is a kubelet over the fake runtime and a fake API, with its pods
// in a lister the test fills.
type harness struct {
	t      *testing.T
	k      *Kubelet
	rt     *fakeruntime.Runtime
	client *fake.Clientset
	clock  *clocktesting.FakeClock
	pods   cache.Indexer
}

func newHarness(t *testing.T, objs ...any) *harness {
	t.Helper()
	dir := t.TempDir()
	client := fake.NewClientset()
	rt := fakeruntime.New()
	rt.AddImage("busybox")
	clk := clocktesting.NewFakeClock(time.Now())
	rt.SetClock(clk.Now) // runtime timestamps and the kubelet's clock agree
	cfg := Config{
		Client: client, NodeName: "n1", RuntimeEndpoint: "fake", DataDir: filepath.Join(dir, "data"),
		LogDir: filepath.Join(dir, "logs"), NodeIP: net.ParseIP("192.0.2.7"), ClusterDNS: []string{"10.96.0.10"},
		Logger: slog.New(slog.DiscardHandler),
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	k := newKubelet(cfg, &runtimeClient{runtime: rt, images: rt}, &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1"}, clk)
	k.recorder = &record.FakeRecorder{} // nil channel: events are dropped
	static := testKubelet(t, objs...)
	k.configMaps, k.secrets, k.services = static.configMaps, static.secrets, static.services
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	k.podLister = corelisters.NewPodLister(pods)
	t.Cleanup(func() { k.probes.stopAll() })
	return &harness{t: t, k: k, rt: rt, client: client, clock: clk, pods: pods}
}

// add stores the pod in the API and the lister and returns its worker
// (not started: the test drives syncPod itself).
func (h *harness) add(pod *v1.Pod) *podWorker {
	h.t.Helper()
	if _, err := h.client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.pods.Add(pod); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	w := &podWorker{uid: pod.UID, pod: pod, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), waiting: map[string]waitingReason{}, started: h.clock.Now()}
	h.k.workersMu.Lock()
	h.k.workers[pod.UID] = w
	h.k.workersMu.Unlock()
	return w
}

func (h *harness) sync(w *podWorker) (time.Duration, bool) {
	h.t.Helper()
	return h.k.syncPod(context.Background(), w)
}

// apiPod is the pod as the API holds it (the status the kubelet wrote).
func (h *harness) apiPod(pod *v1.Pod) *v1.Pod {
	h.t.Helper()
	p, err := h.client.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// container is the newest runtime container of the pod named name.
func (h *harness) container(pod *v1.Pod, name string) *runtimeapi.ContainerStatus {
	h.t.Helper()
	state, err := h.k.runtime.podState(context.Background(), pod.UID)
	if err != nil {
		h.t.Fatal(err)
	}
	inst := state.instances(name, "")
	if len(inst) == 0 {
		return nil
	}
	st, err := h.rt.ContainerStatus(context.Background(), inst[0].Id, false)
	if err != nil {
		return nil
	}
	return st.Status
}

func (h *harness) running(pod *v1.Pod, name string) bool {
	c := h.container(pod, name)
	return c != nil && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}

func testPodSpec(name string, uid types.UID, policy v1.RestartPolicy) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: uid, CreationTimestamp: metav1.Now()},
		Spec: v1.PodSpec{NodeName: "n1", RestartPolicy: policy,
			Containers: []v1.Container{{Name: "app", Image: "busybox", ImagePullPolicy: v1.PullIfNotPresent,
				Command: []string{"sleep", "1000"}}}},
	}
}

func TestSyncPodRunsInitThenApp(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	always := v1.ContainerRestartPolicyAlways
	pod.Spec.InitContainers = []v1.Container{
		{Name: "side", Image: "busybox", RestartPolicy: &always},
		{Name: "init", Image: "busybox"},
	}
	w := h.add(pod)

	// One sync creates the sandbox and starts the sidecar, the next the
	// init container (the sidecar runs).
	h.sync(w)
	if h.rt.Count("RunPodSandbox") != 1 || !h.running(pod, "side") || h.container(pod, "init") != nil {
		t.Fatalf("after sync 1: calls %v", h.rt.Calls())
	}
	h.sync(w)
	if !h.running(pod, "init") || h.container(pod, "app") != nil {
		t.Fatalf("after sync 2: init should run alone")
	}
	if got := h.apiPod(pod).Status.Phase; got != v1.PodPending {
		t.Errorf("phase during init = %s, want Pending", got)
	}
	h.rt.Exit(h.container(pod, "init").Id, 0)
	h.sync(w)
	if !h.running(pod, "app") || !h.running(pod, "side") {
		t.Fatalf("after init success the app and sidecar should run")
	}
	st := h.apiPod(pod).Status
	if st.Phase != v1.PodRunning || st.PodIP != "10.88.0.5" || len(st.ContainerStatuses) != 1 || st.ContainerStatuses[0].State.Running == nil {
		t.Fatalf("status = %+v", st)
	}
	// The init container that succeeded reports ready, as upstream (the
	// InitContainer conformance specs check it).
	for _, cs := range st.InitContainerStatuses {
		if cs.Name == "init" && !cs.Ready {
			t.Errorf("init container completed with 0 but not ready: %+v", cs)
		}
	}
	// A settled pod costs no more runtime writes.
	before := len(h.rt.Calls())
	h.sync(w)
	for _, c := range h.rt.Calls()[before:] {
		if !strings.HasPrefix(c, "List") && !strings.HasSuffix(c, "Status") {
			t.Errorf("steady sync called %s", c)
		}
	}
}

// A privileged container starts: containerd checks privilege against the
// sandbox config passed with CreateContainer (a CSI driver's node plugin
// needs this).
func TestSyncPodPrivilegedContainer(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{Privileged: ptr.To(true)}
	w := h.add(pod)
	h.sync(w)
	if !h.running(pod, "app") {
		t.Fatalf("privileged container not running; calls %v", h.rt.Calls())
	}
}

// Containers are created with the pod's sandbox config, from which
// containerd sets HOSTNAME: the pod's hostname, or the node's for
// hostNetwork pods.
func TestSyncPodContainerHostname(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, hostname string
		hostNetwork    bool
		want           string
	}{
		{name: "plain", want: "plain"},
		{name: "named", hostname: "custom", want: "custom"},
		{name: "hostnet", hostNetwork: true, want: ""},
	} {
		pod := testPodSpec(tc.name, types.UID("uid-"+tc.name), v1.RestartPolicyAlways)
		pod.Spec.Hostname, pod.Spec.HostNetwork = tc.hostname, tc.hostNetwork
		h.sync(h.add(pod))
		c := h.container(pod, "app")
		if c == nil {
			t.Fatalf("%s: no app container; calls %v", tc.name, h.rt.Calls())
		}
		if got := h.rt.Containers[c.Id].Hostname; got != tc.want {
			t.Errorf("%s: container created with sandbox hostname %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The status names the generation of the spec it reflects, and so do the
// kubelet's conditions; a spec update is observed on the next sync.
func TestSyncPodObservedGeneration(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Generation = 1
	w := h.add(pod)
	h.sync(w)
	check := func(want int64) {
		t.Helper()
		got := h.apiPod(pod)
		if got.Status.ObservedGeneration != want {
			t.Errorf("status.observedGeneration = %d, want %d", got.Status.ObservedGeneration, want)
		}
		for _, c := range got.Status.Conditions {
			if c.ObservedGeneration != want {
				t.Errorf("condition %s observedGeneration = %d, want %d", c.Type, c.ObservedGeneration, want)
			}
		}
	}
	check(1)

	updated := h.apiPod(pod)
	updated.Generation = 2
	updated.Spec.ActiveDeadlineSeconds = ptr.To[int64](5000)
	w.mu.Lock()
	w.pod = updated
	w.mu.Unlock()
	h.sync(w)
	check(2)
}

// A pod past its activeDeadlineSeconds is stopped and Failed with reason
// DeadlineExceeded; before that the worker is due back by the deadline.
func TestSyncPodActiveDeadline(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Spec.ActiveDeadlineSeconds = ptr.To[int64](5)
	w := h.add(pod)
	h.sync(w)
	if !h.running(pod, "app") {
		t.Fatalf("app not running; calls %v", h.rt.Calls())
	}
	w.mu.Lock()
	w.pod = h.apiPod(pod) // with the start time the kubelet wrote
	w.mu.Unlock()
	h.clock.Step(2 * time.Second)
	next, _ := h.sync(w)
	if next <= 0 || next > 3*time.Second {
		t.Errorf("sync before the deadline asked to come back in %s, want within the 3 s left", next)
	}
	if got := h.apiPod(pod).Status.Phase; got != v1.PodRunning {
		t.Fatalf("phase before the deadline = %s, want Running", got)
	}

	h.clock.Step(4 * time.Second)
	h.sync(w)
	if h.running(pod, "app") {
		t.Error("app still running past the deadline")
	}
	got := h.apiPod(pod).Status
	if got.Phase != v1.PodFailed || got.Reason != "DeadlineExceeded" {
		t.Fatalf("status past the deadline: phase %s, reason %q; want Failed, DeadlineExceeded", got.Phase, got.Reason)
	}
	w.mu.Lock()
	w.pod = h.apiPod(pod)
	w.mu.Unlock()
	before := h.rt.Count("CreateContainer")
	h.sync(w)
	if h.rt.Count("CreateContainer") != before || h.running(pod, "app") {
		t.Error("a Failed pod started a container again")
	}
}

// While the first init container fails, the containers after it wait with
// reason PodInitializing, as upstream reports them (the InitContainer
// conformance specs check the second init container's reason).
func TestSyncPodWaitingReasonsDuringInit(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Spec.InitContainers = []v1.Container{{Name: "init1", Image: "busybox"}, {Name: "init2", Image: "busybox"}}
	w := h.add(pod)
	h.sync(w)
	h.rt.Exit(h.container(pod, "init1").Id, 1)
	h.sync(w)
	st := h.apiPod(pod).Status
	reason := func(statuses []v1.ContainerStatus, name string) string {
		for _, cs := range statuses {
			if cs.Name == name && cs.State.Waiting != nil {
				return cs.State.Waiting.Reason
			}
		}
		return ""
	}
	if got := reason(st.InitContainerStatuses, "init2"); got != "PodInitializing" {
		t.Errorf("init2 waiting reason %q, want PodInitializing", got)
	}
	if got := reason(st.ContainerStatuses, "app"); got != "PodInitializing" {
		t.Errorf("app waiting reason %q, want PodInitializing", got)
	}
}

func TestSyncPodCrashLoop(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	first := h.container(pod, "app")
	h.rt.Exit(first.Id, 1)

	// The first restart is immediate.
	h.sync(w)
	second := h.container(pod, "app")
	if second.Id == first.Id || second.State != runtimeapi.ContainerState_CONTAINER_RUNNING || second.Metadata.Attempt != 1 {
		t.Fatalf("not restarted: %+v", second.Metadata)
	}
	// The second waits in CrashLoopBackOff.
	h.rt.Exit(second.Id, 1)
	next, _ := h.sync(w)
	if h.container(pod, "app").Id != second.Id {
		t.Fatal("restarted inside the backoff window")
	}
	if next <= 0 || next > 10*time.Second {
		t.Errorf("requeue after %v, want within the 10 s backoff", next)
	}
	cs := h.apiPod(pod).Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "CrashLoopBackOff" || cs[0].RestartCount != 1 {
		t.Fatalf("container status = %+v", cs)
	}
	if cs[0].LastTerminationState.Terminated == nil || cs[0].LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("last termination = %+v", cs[0].LastTerminationState)
	}
}

func TestSyncPodNeverFailsAndStopsSandbox(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyNever)
	w := h.add(pod)
	h.sync(w)
	h.rt.Exit(h.container(pod, "app").Id, 3)
	h.sync(w)
	got := h.apiPod(pod)
	if got.Status.Phase != v1.PodFailed {
		t.Fatalf("phase = %s, want Failed", got.Status.Phase)
	}
	if h.rt.Count("CreateContainer") != 1 {
		t.Errorf("a Never pod was restarted")
	}
	// The worker sees its Failed status: the sandbox is released.
	w.mu.Lock()
	w.pod = got
	w.mu.Unlock()
	h.sync(w)
	for _, sb := range h.rt.Sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Error("sandbox of a finished pod still ready")
		}
	}
}

func TestSyncPodLivenessFailureRestarts(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	c := h.container(pod, "app")
	h.k.probes.mu.Lock()
	h.k.probes.results[c.Id] = &probeResult{started: true, ready: true, mustRestart: true}
	h.k.probes.mu.Unlock()
	next, _ := h.sync(w)
	if h.container(pod, "app").State != runtimeapi.ContainerState_CONTAINER_EXITED || next != 100*time.Millisecond {
		t.Fatalf("liveness failure did not kill the container (requeue %v)", next)
	}
	h.sync(w)
	if !h.running(pod, "app") || h.container(pod, "app").Id == c.Id {
		t.Fatal("container not restarted after the kill")
	}
}

func TestSyncPodReplacesDeadSandbox(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	old := h.container(pod, "app")
	for _, sb := range h.rt.Sandboxes {
		sb.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}
	h.sync(w)
	if h.rt.Count("RunPodSandbox") != 2 || !h.running(pod, "app") || h.container(pod, "app").Id == old.Id {
		t.Fatalf("sandbox not replaced in one sync: %v", h.rt.Calls())
	}
}

func TestSyncPodDeletion(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.sync(w)
	now := metav1.Now()
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp = &now
	grace := int64(0)
	deleting.DeletionGracePeriodSeconds = &grace
	w.mu.Lock()
	w.pod = deleting
	w.mu.Unlock()
	if _, finished := h.sync(w); finished {
		t.Fatal("finished before the object was removed")
	}
	if h.running(pod, "app") {
		t.Error("container still running after termination")
	}
	if _, err := h.client.CoreV1().Pods("ns").Get(context.Background(), "p", metav1.GetOptions{}); err == nil {
		t.Error("terminated pod not deleted from the API")
	}
	// The informer's delete: everything goes.
	w.mu.Lock()
	w.removed = true
	w.mu.Unlock()
	if _, finished := h.sync(w); !finished {
		t.Fatal("worker not finished after removal")
	}
	if len(h.rt.Sandboxes) != 0 || len(h.rt.Containers) != 0 {
		t.Errorf("runtime keeps %d sandboxes, %d containers", len(h.rt.Sandboxes), len(h.rt.Containers))
	}
}

func TestSyncPodImageErrors(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Spec.Containers[0].Image = "missing"
	pod.Spec.Containers[0].ImagePullPolicy = v1.PullNever
	w := h.add(pod)
	h.sync(w)
	cs := h.apiPod(pod).Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "ErrImageNeverPull" {
		t.Fatalf("status = %+v", cs)
	}
	// Pulled when allowed.
	w.mu.Lock()
	w.pod = w.pod.DeepCopy()
	w.pod.Spec.Containers[0].ImagePullPolicy = v1.PullAlways
	w.mu.Unlock()
	h.sync(w)
	if !h.running(pod, "app") || h.rt.Count("PullImage") != 1 {
		t.Fatalf("image not pulled and started: %v", h.rt.Calls())
	}
}

func TestSyncPodRuntimeErrors(t *testing.T) {
	h := newHarness(t)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	w := h.add(pod)
	h.rt.InjectError("RunPodSandbox", errFake)
	if next, _ := h.sync(w); next != retrySoon {
		t.Fatalf("failed sandbox: requeue %v, want %v", next, retrySoon)
	}
	h.rt.InjectError("StartContainer", errFake)
	h.sync(w)
	cs := h.apiPod(pod).Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "RunContainerError" {
		t.Fatalf("status = %+v", cs)
	}
	// The created-but-not-started container is replaced.
	h.sync(w)
	if !h.running(pod, "app") {
		t.Fatal("container not started on retry")
	}
	h.rt.InjectError("ListPodSandbox", errFake)
	if next, _ := h.sync(w); next != retrySoon {
		t.Errorf("failed list: requeue %v", next)
	}
}

type fakeErr string

func (e fakeErr) Error() string { return string(e) }

const errFake = fakeErr("injected failure")

func TestNodeReadyFollowsPLEGHealth(t *testing.T) {
	h := newHarness(t)
	ready := func() v1.NodeCondition {
		st := h.k.nodeStatus(context.Background(), h.k.initialNode())
		for _, c := range st.Conditions {
			if c.Type == v1.NodeReady {
				return c
			}
		}
		t.Fatal("no Ready condition")
		return v1.NodeCondition{}
	}
	if c := ready(); c.Status != v1.ConditionTrue {
		t.Fatalf("fresh node not ready: %+v", c)
	}
	h.rt.InjectError("ListPodSandbox", errFake)
	if err := h.k.pleg.Relist(context.Background()); err == nil {
		t.Fatal("relist did not fail")
	}
	h.clock.Step(3*time.Minute + time.Second)
	c := ready()
	if c.Status != v1.ConditionFalse || c.Reason != "KubeletNotReady" ||
		!strings.HasPrefix(c.Message, "PLEG is not healthy: pleg was last seen active 3m1s ago; threshold is 3m0s") {
		t.Fatalf("stalled PLEG: %+v", c)
	}
	if h.k.pleg.Failures() != 1 {
		t.Errorf("failures = %d", h.k.pleg.Failures())
	}
	if err := h.k.pleg.Relist(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := ready(); c.Status != v1.ConditionTrue {
		t.Fatalf("recovered PLEG: %+v", c)
	}
}
