package scheduler

import (
	"time"

	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func node(name string, cpu, mem string, labels map[string]string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
			corev1.ResourcePods: resource.MustParse("110"),
		}},
	}
}

func pod(name string, cpu, mem string) *corev1.Pod {
	req := corev1.ResourceList{}
	if cpu != "" {
		req[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		req[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: req}}}},
	}
}

func state(p *corev1.Pod) *cycleState {
	return (&Scheduler{}).prepare(p)
}

func TestPodRequestsCountInitContainersByMax(t *testing.T) {
	p := pod("p", "100m", "100Mi")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "d", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}}})
	p.Spec.InitContainers = []corev1.Container{{Name: "i", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("50Mi")}}}}
	p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}
	r := podRequests(p)
	if r.milliCPU != 510 || r.memory != 100<<20 || r.pods != 1 {
		t.Fatalf("requests = %+v, want cpu 510m (init max + overhead), memory 100Mi", r)
	}
}

func TestResourcesFitReasons(t *testing.T) {
	ni := newNodeInfo(node("n", "1", "1Gi", nil))
	ni.addPod(&podInfo{pod: pod("a", "800m", "512Mi"), requests: podRequests(pod("a", "800m", "512Mi"))})
	if r := (resourcesFit{}).Filter(state(pod("b", "100m", "100Mi")), ni); r != nil {
		t.Fatalf("small pod rejected: %v", r)
	}
	r := (resourcesFit{}).Filter(state(pod("c", "300m", "600Mi")), ni)
	if len(r) != 2 || r[0] != "Insufficient cpu" || r[1] != "Insufficient memory" {
		t.Fatalf("reasons = %v", r)
	}
	ni.removePod("a")
	if r := (resourcesFit{}).Filter(state(pod("c", "300m", "600Mi")), ni); r != nil {
		t.Fatalf("after removal: %v", r)
	}
}

func TestTaintsAndCordon(t *testing.T) {
	n := node("n", "1", "1Gi", nil)
	n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	ni := newNodeInfo(n)
	p := pod("p", "", "")
	if r := (taintToleration{}).Filter(state(p), ni); len(r) != 1 || r[0] != "node(s) had untolerated taint {dedicated: gpu}" {
		t.Fatalf("untolerated: %v", r)
	}
	p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	if r := (taintToleration{}).Filter(state(p), ni); r != nil {
		t.Fatalf("tolerated taint rejected: %v", r)
	}
	n.Spec.Unschedulable = true
	if r := (nodeUnschedulable{}).Filter(state(p), ni); r == nil {
		t.Fatal("cordoned node accepted")
	}
	p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists})
	if r := (nodeUnschedulable{}).Filter(state(p), ni); r != nil {
		t.Fatalf("pod tolerating unschedulable rejected: %v", r)
	}
}

func TestNodeAffinityOperators(t *testing.T) {
	ni := newNodeInfo(node("n1", "1", "1Gi", map[string]string{"zone": "a", "cores": "8"}))
	term := func(reqs ...corev1.NodeSelectorRequirement) *corev1.Pod {
		p := pod("p", "", "")
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: reqs}}},
		}}
		return p
	}
	for _, c := range []struct {
		req  corev1.NodeSelectorRequirement
		want bool
	}{
		{corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}, true},
		{corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"a"}}, false},
		{corev1.NodeSelectorRequirement{Key: "gpu", Operator: corev1.NodeSelectorOpDoesNotExist}, true},
		{corev1.NodeSelectorRequirement{Key: "zone", Operator: corev1.NodeSelectorOpExists}, true},
		{corev1.NodeSelectorRequirement{Key: "cores", Operator: corev1.NodeSelectorOpGt, Values: []string{"4"}}, true},
		{corev1.NodeSelectorRequirement{Key: "cores", Operator: corev1.NodeSelectorOpLt, Values: []string{"4"}}, false},
		{corev1.NodeSelectorRequirement{Key: "cores", Operator: corev1.NodeSelectorOpGt, Values: []string{"x"}}, false},
	} {
		got := (nodeAffinity{}).Filter(state(term(c.req)), ni) == nil
		if got != c.want {
			t.Errorf("%s %s %v: fits=%v, want %v", c.req.Key, c.req.Operator, c.req.Values, got, c.want)
		}
	}
	byName := pod("p", "", "")
	byName.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n2"}}}}},
	}}}
	if (nodeAffinity{}).Filter(state(byName), ni) == nil {
		t.Error("matchFields on another node's name matched")
	}
	sel := pod("p", "", "")
	sel.Spec.NodeSelector = map[string]string{"zone": "b"}
	if (nodeAffinity{}).Filter(state(sel), ni) == nil {
		t.Error("nodeSelector zone=b matched zone=a")
	}
}

func TestHostPortConflict(t *testing.T) {
	withPort := func(name string, port int32) *corev1.Pod {
		p := pod(name, "", "")
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: port}}
		return p
	}
	ni := newNodeInfo(node("n", "1", "1Gi", nil))
	ni.addPod(&podInfo{pod: withPort("a", 8080)})
	if r := (nodePorts{}).Filter(state(withPort("b", 8080)), ni); r == nil {
		t.Fatal("host port conflict accepted")
	}
	if r := (nodePorts{}).Filter(state(withPort("c", 8081)), ni); r != nil {
		t.Fatalf("free port rejected: %v", r)
	}
}

func TestDiagnosisMessage(t *testing.T) {
	d := diagnosis{nodes: 3}
	d.add([]string{"node(s) were unschedulable"})
	d.add([]string{"Insufficient cpu"})
	d.add([]string{"Insufficient cpu"})
	if got, want := d.message(), "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
}

func TestNumFeasibleToFind(t *testing.T) {
	for n, want := range map[int]int{50: 50, 100: 100, 1000: 420, 5000: 500, 10000: 500} {
		if got := numFeasibleToFind(n); got != want {
			t.Errorf("numFeasibleToFind(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestQueueOrderAndBackoff(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Now())
	q := newQueue(clk)
	now := metav1.NewTime(clk.Now())
	low, high, older := pod("low", "", ""), pod("high", "", ""), pod("older", "", "")
	high.Spec.Priority = ptrTo[int32](10)
	low.CreationTimestamp, high.CreationTimestamp = now, now
	older.CreationTimestamp = metav1.NewTime(now.Add(-60e9))
	q.add(low)
	q.add(high)
	q.add(older)
	ctx := t.Context()
	var order []string
	for i := 0; i < 3; i++ {
		qp, _ := q.pop(ctx)
		order = append(order, qp.pod.Name)
		if qp.pod.Name == "older" {
			q.requeue(qp, true)
		} else {
			q.done(qp.pod.UID)
		}
	}
	if order[0] != "high" || order[1] != "older" || order[2] != "low" {
		t.Fatalf("order = %v, want priority then age", order)
	}
	if a, _, u := q.lengths(); a != 0 || u != 1 {
		t.Fatalf("after failure: active %d unschedulable %d", a, u)
	}
	q.moveAll() // still backing off
	if a, b, _ := q.lengths(); a != 0 || b != 1 {
		t.Fatalf("moveAll during backoff: active %d backoff %d", a, b)
	}
	clk.SetTime(clk.Now().Add(2 * time.Second))
	q.flush()
	if a, _, _ := q.lengths(); a != 1 {
		t.Fatal("backoff did not end")
	}
	if backoffFor(1) != time.Second || backoffFor(3) != 4*time.Second || backoffFor(10) != 10*time.Second {
		t.Fatal("backoff is not exponential from 1s to 10s")
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestScorePlugins(t *testing.T) {
	empty := newNodeInfo(node("empty", "4", "8Gi", nil))
	busy := newNodeInfo(node("busy", "4", "8Gi", nil))
	heavy := pod("heavy", "3", "1Gi")
	busy.addPod(&podInfo{pod: heavy, requests: podRequests(heavy)})
	s := state(pod("p", "500m", "512Mi"))
	if a, b := (leastAllocated{}).Score(s, empty), (leastAllocated{}).Score(s, busy); a <= b {
		t.Fatalf("least allocated: empty %d <= busy %d", a, b)
	}
	// busy uses 87% cpu but little memory: unbalanced.
	if a, b := (balancedAllocation{}).Score(s, empty), (balancedAllocation{}).Score(s, busy); a <= b {
		t.Fatalf("balanced allocation: empty %d <= busy %d", a, b)
	}
	withImage := node("cached", "4", "8Gi", nil)
	withImage.Status.Images = []corev1.ContainerImage{{Names: []string{"busybox:latest"}, SizeBytes: 500 << 20}}
	img := pod("img", "", "")
	img.Spec.Containers[0].Image = "busybox"
	scores := []int64{(imageLocality{}).Score(state(img), newNodeInfo(withImage)), (imageLocality{}).Score(state(img), empty)}
	(imageLocality{}).Normalize(scores)
	if scores[0] <= 0 || scores[1] != 0 {
		t.Fatalf("image locality scores %v, want the node holding the image ahead", scores)
	}
	pref := newNodeInfo(node("tainted", "4", "8Gi", nil))
	pref.node.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectPreferNoSchedule}}
	ts := []int64{(taintToleration{}).Score(s, pref), (taintToleration{}).Score(s, empty)}
	(taintToleration{}).Normalize(ts)
	if ts[0] >= ts[1] {
		t.Fatalf("PreferNoSchedule taint scores %v, want the untainted node ahead", ts)
	}
}

func TestPodRequestsDuringResize(t *testing.T) {
	allocated := func(p *corev1.Pod, cpu string) *corev1.Pod {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name,
			AllocatedResources: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}
		return p
	}
	infeasible := allocated(pod("c", "4", "100Mi"), "500m")
	infeasible.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: corev1.PodReasonInfeasible}}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want int64
	}{
		{"no status: the spec", pod("a", "300m", "100Mi"), 300},
		{"pending shrink keeps the allocation", allocated(pod("b", "200m", "100Mi"), "500m"), 500},
		{"pending growth counts the spec", allocated(pod("b", "800m", "100Mi"), "500m"), 800},
		{"infeasible growth counts only the allocation", infeasible, 500},
	} {
		if got := podRequests(tc.pod).milliCPU; got != tc.want {
			t.Errorf("%s: cpu %dm, want %dm", tc.name, got, tc.want)
		}
	}
}
