package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/testserver"
)

type env struct {
	t      *testing.T
	client kubernetes.Interface
	ctx    context.Context
	nodes  int // created by node
}

func start(t *testing.T) *env {
	t.Helper()
	ts := testserver.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	// As in `skiff server`: pods and nodes come from the server's cache.
	s := New(Config{Client: ts.Client, Local: ts.API})
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &env{t: t, client: ts.Client, ctx: ctx}
}

func (e *env) node(name, cpu string, labels map[string]string, mutate ...func(*corev1.Node)) {
	e.t.Helper()
	n := node(name, cpu, "4Gi", labels)
	for _, m := range mutate {
		m(n)
	}
	if _, err := e.client.CoreV1().Nodes().Create(e.ctx, n, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.nodes++
}

func (e *env) pod(p *corev1.Pod) {
	e.t.Helper()
	p.UID = ""
	if _, err := e.client.CoreV1().Pods("default").Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// placement waits until the pod is bound and returns its node.
func (e *env) placement(name string) string {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		p, err := e.client.CoreV1().Pods("default").Get(e.ctx, name, metav1.GetOptions{})
		if err == nil && p.Spec.NodeName != "" {
			return p.Spec.NodeName
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("pod %s was not scheduled", name)
	return ""
}

// unschedulable waits for the PodScheduled=False condition and returns its message.
func (e *env) unschedulable(name string) string {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		p, err := e.client.CoreV1().Pods("default").Get(e.ctx, name, metav1.GetOptions{})
		if err == nil {
			if p.Spec.NodeName != "" {
				e.t.Fatalf("pod %s was scheduled to %s", name, p.Spec.NodeName)
			}
			for _, c := range p.Status.Conditions {
				// A verdict from before the scheduler saw every node is
				// retried when the rest arrive; wait for the final one.
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable &&
					strings.HasPrefix(c.Message, fmt.Sprintf("0/%d nodes", e.nodes)) {
					return c.Message
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("pod %s never reported Unschedulable", name)
	return ""
}

func TestSchedulesByResourcesAndReportsWhyNot(t *testing.T) {
	e := start(t)
	e.node("small", "1", nil)
	e.node("big", "4", nil)
	e.node("cordoned", "8", nil, func(n *corev1.Node) { n.Spec.Unschedulable = true })
	e.pod(pod("needs-2", "2", ""))
	if got := e.placement("needs-2"); got != "big" {
		t.Fatalf("2-cpu pod on %s, want big", got)
	}
	e.pod(pod("needs-3", "3", ""))
	msg := e.unschedulable("needs-3")
	if want := "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."; msg != want {
		t.Fatalf("message = %q, want %q", msg, want)
	}
	// Other pods are not held up by the one that cannot fit.
	e.pod(pod("tiny", "100m", ""))
	e.placement("tiny")
	// Freeing room (deleting the 2-cpu pod) lets the waiting pod in.
	if err := e.client.CoreV1().Pods("default").Delete(e.ctx, "needs-2", metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if got := e.placement("needs-3"); got != "big" {
		t.Fatalf("needs-3 on %s after room was freed", got)
	}
	// Uncordoning wakes pods too.
	e.pod(pod("needs-5", "5", ""))
	e.unschedulable("needs-5")
	n, _ := e.client.CoreV1().Nodes().Get(e.ctx, "cordoned", metav1.GetOptions{})
	n.Spec.Unschedulable = false
	if _, err := e.client.CoreV1().Nodes().Update(e.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.placement("needs-5"); got != "cordoned" {
		t.Fatalf("needs-5 on %s after uncordon", got)
	}
	// Events are written asynchronously by the broadcaster.
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs, err := e.client.CoreV1().Events("default").List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=tiny"})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range evs.Items {
			found = found || (ev.Reason == "Scheduled" && strings.Contains(ev.Message, "Successfully assigned default/tiny to"))
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Scheduled event for tiny: %+v", evs.Items)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNodeSelectorTaintsAndAffinity(t *testing.T) {
	e := start(t)
	e.node("a1", "4", map[string]string{"zone": "a", "kubernetes.io/hostname": "a1"})
	e.node("a2", "4", map[string]string{"zone": "a", "kubernetes.io/hostname": "a2"})
	e.node("b1", "4", map[string]string{"zone": "b", "kubernetes.io/hostname": "b1"}, func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	})

	sel := pod("in-b", "", "")
	sel.Spec.NodeSelector = map[string]string{"zone": "b"}
	e.pod(sel)
	if msg := e.unschedulable("in-b"); !strings.Contains(msg, "1 node(s) had untolerated taint {dedicated: db}") ||
		!strings.Contains(msg, "2 node(s) didn't match Pod's node affinity/selector") {
		t.Fatalf("message = %q", msg)
	}
	tol := pod("in-b-tolerating", "", "")
	tol.Spec.NodeSelector = map[string]string{"zone": "b"}
	tol.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
	e.pod(tol)
	if got := e.placement("in-b-tolerating"); got != "b1" {
		t.Fatalf("tolerating pod on %s", got)
	}

	// Required anti-affinity on hostname: two replicas on two nodes, a
	// third finds no room (b1 is tainted).
	for i := 0; i < 3; i++ {
		p := pod(fmt.Sprintf("web-%d", i), "", "")
		p.Labels = map[string]string{"app": "web"}
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				TopologyKey:   "kubernetes.io/hostname",
			}},
		}}
		e.pod(p)
		if i < 2 {
			e.placement(p.Name)
		}
	}
	if e.placement("web-0") == e.placement("web-1") {
		t.Fatal("anti-affine replicas share a node")
	}
	if msg := e.unschedulable("web-2"); !strings.Contains(msg, "didn't match pod anti-affinity rules") {
		t.Fatalf("third replica: %q", msg)
	}

	// Required affinity: follow web-0 to its zone.
	follower := pod("follower", "", "")
	follower.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			TopologyKey:   "zone",
		}},
	}}
	e.pod(follower)
	if got := e.placement("follower"); got != "a1" && got != "a2" {
		t.Fatalf("follower on %s, want zone a", got)
	}
}

func TestTopologySpread(t *testing.T) {
	e := start(t)
	for _, z := range []string{"a", "b", "c"} {
		e.node("n-"+z, "8", map[string]string{"zone": z})
	}
	counts := map[string]int{}
	for i := 0; i < 9; i++ {
		p := pod(fmt.Sprintf("s-%d", i), "", "")
		p.Labels = map[string]string{"app": "spread"}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}},
		}}
		e.pod(p)
		counts[e.placement(p.Name)]++
	}
	for z, n := range counts {
		if n != 3 {
			t.Fatalf("zone %s got %d of 9 pods: %v", z, n, counts)
		}
	}
}

func TestLeastAllocatedSpreadsLoad(t *testing.T) {
	e := start(t)
	e.node("x", "4", nil)
	e.node("y", "4", nil)
	counts := map[string]int{}
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("p-%d", i)
		e.pod(pod(name, "250m", "128Mi"))
		counts[e.placement(name)]++
	}
	if counts["x"] != 4 || counts["y"] != 4 {
		t.Fatalf("placement %v, want 4 and 4", counts)
	}
}

// kubeletStandIn finishes graceful deletions as a kubelet would, since
// these tests run no node agent.
func (e *env) kubeletStandIn() {
	go func() {
		for e.ctx.Err() == nil {
			pods, err := e.client.CoreV1().Pods("default").List(e.ctx, metav1.ListOptions{})
			if err == nil {
				for _, p := range pods.Items {
					if p.DeletionTimestamp != nil {
						_ = e.client.CoreV1().Pods("default").Delete(e.ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0)})
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

func TestPreemptionEvictsLowestPriorityVictims(t *testing.T) {
	e := start(t)
	e.kubeletStandIn()
	for _, pc := range []struct {
		name  string
		value int32
	}{{"low", 10}, {"mid", 100}, {"high", 1000}} {
		_, err := e.client.SchedulingV1().PriorityClasses().Create(e.ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: pc.name}, Value: pc.value,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	e.node("n1", "2", nil)
	e.node("n2", "2", nil)
	withClass := func(name, cpu, class string) *corev1.Pod {
		p := pod(name, cpu, "")
		p.Spec.PriorityClassName = class
		return p
	}
	// n1: two low pods; n2: one mid pod. Both full.
	e.pod(withClass("mid-1", "2", "mid"))
	placed := map[string]string{"mid-1": e.placement("mid-1")}
	e.pod(withClass("low-1", "1", "low"))
	e.pod(withClass("low-2", "1", "low"))
	for _, n := range []string{"low-1", "low-2"} {
		placed[n] = e.placement(n)
	}
	if placed["low-1"] != placed["low-2"] || placed["mid-1"] == placed["low-1"] {
		t.Fatalf("setup placement %v", placed)
	}
	got, err := e.client.CoreV1().Pods("default").Get(e.ctx, "low-1", metav1.GetOptions{})
	if err != nil || got.Spec.Priority == nil || *got.Spec.Priority != 10 {
		t.Fatalf("priority not resolved from the class: %v", got.Spec.Priority)
	}
	// A high pod needing one cpu should evict a single low pod, not the mid one.
	e.pod(withClass("urgent", "1", "high"))
	if node := e.placement("urgent"); node != placed["low-1"] {
		t.Fatalf("urgent on %s, want %s (the node of the low pods)", node, placed["low-1"])
	}
	left := 0
	for _, n := range []string{"low-1", "low-2"} {
		if _, err := e.client.CoreV1().Pods("default").Get(e.ctx, n, metav1.GetOptions{}); err == nil {
			left++
		}
	}
	if left != 1 {
		t.Fatalf("%d low pods left, want exactly one evicted", left)
	}
	if _, err := e.client.CoreV1().Pods("default").Get(e.ctx, "mid-1", metav1.GetOptions{}); err != nil {
		t.Fatalf("mid pod evicted: %v", err)
	}
	_, err = e.client.CoreV1().Pods("default").Create(e.ctx, withClass("unknown", "1", "nope"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("pod with an unknown priority class: %v, want Forbidden", err)
	}
}
