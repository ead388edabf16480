package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func conds(ready, notReady int) []*corev1.NodeCondition {
	var out []*corev1.NodeCondition
	for range ready {
		out = append(out, &corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue})
	}
	for i := range notReady {
		s := corev1.ConditionUnknown
		if i%2 == 1 {
			s = corev1.ConditionFalse
		}
		out = append(out, &corev1.NodeCondition{Type: corev1.NodeReady, Status: s})
	}
	return out
}

func TestComputeZoneState(t *testing.T) {
	for _, tc := range []struct {
		ready, notReady int
		want            zoneState
	}{
		{1, 0, stateNormal},
		{0, 1, stateFullDisruption},
		{0, 5, stateFullDisruption},
		{1, 2, stateNormal},            // 67% unhealthy but only two nodes
		{2, 3, statePartialDisruption}, // 60%
		{9, 11, statePartialDisruption},
		{11, 9, stateNormal}, // 45%
		{20, 3, stateNormal},
	} {
		n, got := computeZoneState(conds(tc.ready, tc.notReady), 0.55)
		if got != tc.want || n != tc.notReady {
			t.Errorf("%d ready, %d not: got %s (%d), want %s", tc.ready, tc.notReady, got, n, tc.want)
		}
	}
}

func TestZoneKey(t *testing.T) {
	node := func(l map[string]string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: l}} }
	if k := zoneKey(node(nil)); k != "" {
		t.Fatalf("unlabelled node in zone %q", k)
	}
	a := zoneKey(node(map[string]string{corev1.LabelTopologyZone: "a"}))
	b := zoneKey(node(map[string]string{corev1.LabelTopologyZone: "b"}))
	beta := zoneKey(node(map[string]string{corev1.LabelFailureDomainBetaZone: "a"}))
	if a == "" || a == b || a != beta {
		t.Fatalf("zone keys a=%q b=%q beta=%q", a, b, beta)
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBucket(0.1, t0)
	if !b.tryAccept(t0) || b.tryAccept(t0) {
		t.Fatal("a fresh bucket admits exactly one")
	}
	if b.tryAccept(t0.Add(9 * time.Second)) {
		t.Fatal("admitted before 1/qps")
	}
	if !b.tryAccept(t0.Add(10 * time.Second)) {
		t.Fatal("not admitted after 1/qps")
	}
	if newBucket(0, t0).tryAccept(t0) {
		t.Fatal("a zero rate admitted")
	}
}

func testController() *Controller {
	return &Controller{
		cfg:        Config{EvictionRate: 0.1, SecondaryEvictionRate: 0.01, LargeClusterSize: 50, UnhealthyZoneThreshold: 0.55},
		log:        slog.New(slog.DiscardHandler),
		zoneStates: map[string]zoneState{}, limiters: map[string]*bucket{},
	}
}

func TestHandleDisruptionRates(t *testing.T) {
	c := testController()
	now := time.Unix(1000, 0)
	// Small zone a partially disrupted: no tainting; large zone b
	// partially disrupted: the secondary rate; zone c healthy: the normal
	// rate.
	zones := map[string][]*corev1.NodeCondition{"a": conds(2, 3), "b": conds(20, 40), "c": conds(3, 0)}
	if c.handleDisruption(zones, now) {
		t.Fatal("entered full disruption with ready nodes")
	}
	want := map[string]zoneState{"a": statePartialDisruption, "b": statePartialDisruption, "c": stateNormal}
	rates := map[string]float64{"a": 0, "b": 0.01, "c": 0.1}
	for z, s := range want {
		if c.zoneStates[z] != s || c.limiters[z].qps != rates[z] {
			t.Errorf("zone %s: %s at %v, want %s at %v", z, c.zoneStates[z], c.limiters[z].qps, s, rates[z])
		}
	}
	// One zone fully down while another is up: the down zone keeps the
	// normal rate.
	zones = map[string][]*corev1.NodeCondition{"a": conds(0, 5), "c": conds(3, 0)}
	if c.handleDisruption(zones, now) {
		t.Fatal("entered full disruption with ready nodes")
	}
	if c.zoneStates["a"] != stateFullDisruption || c.limiters["a"].qps != 0.1 {
		t.Fatalf("zone a: %s at %v", c.zoneStates["a"], c.limiters["a"].qps)
	}
	if _, ok := c.zoneStates["b"]; ok {
		t.Fatal("vanished zone b kept")
	}
	// Every zone down: evictions stop everywhere, once.
	zones = map[string][]*corev1.NodeCondition{"a": conds(0, 5), "c": conds(0, 3)}
	if !c.handleDisruption(zones, now) {
		t.Fatal("did not enter full disruption")
	}
	if c.limiters["a"].qps != 0 || c.limiters["c"].qps != 0 {
		t.Fatal("evictions not stopped")
	}
	if c.handleDisruption(zones, now) {
		t.Fatal("entered full disruption twice")
	}
	// A node back: each zone returns to the rate of its own state.
	zones = map[string][]*corev1.NodeCondition{"a": conds(0, 5), "c": conds(1, 2)}
	c.handleDisruption(zones, now)
	if c.zoneStates["c"] != stateNormal || c.limiters["c"].qps != 0.1 || c.limiters["a"].qps != 0.1 {
		t.Fatalf("after recovery: %v, rates a=%v c=%v", c.zoneStates, c.limiters["a"].qps, c.limiters["c"].qps)
	}
}

// harness drives the controller against a test API server on a fake clock.
type harness struct {
	t     *testing.T
	ctx   context.Context
	c     kubernetes.Interface
	f     informers.SharedInformerFactory
	ctrl  *Controller
	clock *testingclock.FakeClock
	alive map[string]bool
}

func newHarness(t *testing.T) *harness {
	ts := testserver.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, ctx: ctx, c: ts.Client, clock: testingclock.NewFakeClock(time.Now()), alive: map[string]bool{}}
	h.f = informers.NewSharedInformerFactory(ts.Client, 0)
	ctrl, err := New(ts.Client, h.f, Config{Clock: h.clock}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.ctrl = ctrl
	h.f.Start(ctx.Done())
	t.Cleanup(func() { cancel(); h.f.Shutdown() })
	h.f.WaitForCacheSync(ctx.Done())
	return h
}

func (h *harness) addNode(name, zone string) {
	h.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(h.clock.Now()),
	}}}}
	if zone != "" {
		n.Labels = map[string]string{corev1.LabelTopologyZone: zone}
	}
	if _, err := h.c.CoreV1().Nodes().Create(h.ctx, n, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	h.alive[name] = true
}

func (h *harness) addPod(name, node string) {
	h.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node,
		Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	created, err := h.c.CoreV1().Pods("default").Create(h.ctx, p, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := h.c.CoreV1().Pods("default").UpdateStatus(h.ctx, created, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// pass lets the live nodes report, waits for the informers and runs one
// monitor pass.
func (h *harness) pass() {
	h.t.Helper()
	for name, ok := range h.alive {
		if ok {
			beat(h.t, h.c, name, h.clock.Now())
		}
	}
	waitSynced(h.t, h.c, h.f)
	if err := h.ctrl.Monitor(h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

// evictionTaint returns the node's unreachable/not-ready taint key.
func (h *harness) evictionTaint(name string) string {
	h.t.Helper()
	n, err := h.c.CoreV1().Nodes().Get(h.ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute && (t.Key == corev1.TaintNodeUnreachable || t.Key == corev1.TaintNodeNotReady) {
			return t.Key
		}
	}
	return ""
}

// podState reports whether the pod is ready and whether it is being
// deleted (or gone).
func (h *harness) podState(name string) (ready, evicted bool) {
	h.t.Helper()
	p, err := h.c.CoreV1().Pods("default").Get(h.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, true
	}
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	return ready, p.DeletionTimestamp != nil
}

// When every node is lost the controller still marks pods not ready, but
// removes the eviction taints and evicts nothing; once a node is back,
// tainting and evictions resume with fresh taints.
func TestFullDisruptionStopsEvictions(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1", "")
	h.addNode("n2", "")
	h.addPod("p1", "n1")
	h.addPod("p2", "n2")
	h.pass()

	h.alive["n1"] = false
	h.clock.Step(41 * time.Second)
	h.pass()
	if k := h.evictionTaint("n1"); k != corev1.TaintNodeUnreachable {
		t.Fatalf("lost node n1 in a healthy cluster tainted %q", k)
	}

	h.alive["n2"] = false
	h.clock.Step(41 * time.Second)
	h.pass()
	for _, n := range []string{"n1", "n2"} {
		if k := h.evictionTaint(n); k != "" {
			t.Fatalf("full disruption: node %s still tainted %q", n, k)
		}
	}
	for _, p := range []string{"p1", "p2"} {
		if ready, evicted := h.podState(p); ready || evicted {
			t.Fatalf("full disruption: pod %s ready=%v evicted=%v, want not ready and kept", p, ready, evicted)
		}
	}
	h.clock.Step(400 * time.Second)
	h.pass()
	for _, n := range []string{"n1", "n2"} {
		if k := h.evictionTaint(n); k != "" {
			t.Fatalf("full disruption: node %s tainted %q later", n, k)
		}
	}
	if _, evicted := h.podState("p1"); evicted {
		t.Fatal("pod evicted in full disruption")
	}

	// n2 is back: n1 is tainted anew and its pod goes only after its
	// toleration (300 s) counted from the new taint.
	h.alive["n2"] = true
	h.clock.Step(time.Second)
	h.pass()
	h.pass()
	if k := h.evictionTaint("n1"); k != corev1.TaintNodeUnreachable {
		t.Fatalf("after recovery n1 tainted %q", k)
	}
	if k := h.evictionTaint("n2"); k != "" {
		t.Fatalf("recovered n2 tainted %q", k)
	}
	if _, evicted := h.podState("p1"); evicted {
		t.Fatal("pod evicted before its toleration of the new taint ran out")
	}
	h.clock.Step(301 * time.Second)
	h.pass()
	if _, evicted := h.podState("p1"); !evicted {
		t.Fatal("pod not evicted after recovery and its toleration")
	}
	if _, evicted := h.podState("p2"); evicted {
		t.Fatal("pod on the recovered node evicted")
	}
}

// A small zone with most nodes lost is partially disrupted and taints
// nothing, while a healthy zone taints its lost nodes one per 10 s.
func TestPartialDisruptionAndRate(t *testing.T) {
	h := newHarness(t)
	for i := range 4 {
		h.addNode(fmt.Sprintf("a%d", i), "a")
	}
	for i := range 6 {
		h.addNode(fmt.Sprintf("b%d", i), "b")
	}
	h.pass()
	for _, n := range []string{"a0", "a1", "a2", "b0", "b1"} {
		h.alive[n] = false
	}
	h.clock.Step(41 * time.Second)
	h.pass()
	tainted := func(names ...string) int {
		k := 0
		for _, n := range names {
			if h.evictionTaint(n) != "" {
				k++
			}
		}
		return k
	}
	if k := tainted("a0", "a1", "a2", "a3"); k != 0 {
		t.Fatalf("partially disrupted small zone: %d nodes tainted", k)
	}
	if k := tainted("b0", "b1"); k != 1 {
		t.Fatalf("healthy zone: %d of 2 lost nodes tainted at once, want 1", k)
	}
	h.clock.Step(5 * time.Second)
	h.pass()
	if k := tainted("b0", "b1"); k != 1 {
		t.Fatalf("healthy zone: %d lost nodes tainted before 10 s", k)
	}
	h.clock.Step(5 * time.Second)
	h.pass()
	if k := tainted("b0", "b1"); k != 2 {
		t.Fatalf("healthy zone: %d lost nodes tainted after 10 s", k)
	}
	if k := tainted("a0", "a1", "a2", "a3", "b2"); k != 0 {
		t.Fatalf("%d nodes tainted that should not be", k)
	}
}

// beat reports a node Ready with a heartbeat at now, as its kubelet would.
func beat(t *testing.T, c kubernetes.Interface, name string, now time.Time) {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now),
	}}
	if _, err := c.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitSynced waits until the informers hold what the server holds for
// nodes and pods, so a pass does not act on stale objects.
func waitSynced(t *testing.T, c kubernetes.Interface, f informers.SharedInformerFactory) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if nodesPodsSynced(t, c, f) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("informers did not catch up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodesPodsSynced(t *testing.T, c kubernetes.Interface, f informers.SharedInformerFactory) bool {
	ctx := context.Background()
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cached, _ := f.Core().V1().Nodes().Lister().List(labels.Everything())
	if len(cached) != len(nodes.Items) {
		return false
	}
	for _, n := range nodes.Items {
		got, err := f.Core().V1().Nodes().Lister().Get(n.Name)
		if err != nil || got.ResourceVersion != n.ResourceVersion {
			return false
		}
	}
	pods, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cachedPods, _ := f.Core().V1().Pods().Lister().List(labels.Everything())
	if len(cachedPods) != len(pods.Items) {
		return false
	}
	for _, p := range pods.Items {
		got, err := f.Core().V1().Pods().Lister().Pods(p.Namespace).Get(p.Name)
		if err != nil || got.ResourceVersion != p.ResourceVersion {
			return false
		}
	}
	return true
}
