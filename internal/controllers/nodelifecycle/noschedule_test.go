package nodelifecycle

import (
	"reflect"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func cond(t corev1.NodeConditionType, s corev1.ConditionStatus) corev1.NodeCondition {
	return corev1.NodeCondition{Type: t, Status: s}
}

func noSched(key string) corev1.Taint {
	return corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule}
}

// taintStrings renders taints as key:effect, sorted, ignoring TimeAdded.
func taintStrings(taints []corev1.Taint) []string {
	out := []string{}
	for _, t := range taints {
		out = append(out, t.Key+":"+string(t.Effect))
	}
	sort.Strings(out)
	return out
}

// TestNoScheduleTaints follows upstream's TestTaintsNodeByCondition: the
// condition taints and the unschedulable taint track the node's state, and
// no other taint is touched.
func TestNoScheduleTaints(t *testing.T) {
	ready := cond(corev1.NodeReady, corev1.ConditionTrue)
	userTaint := corev1.Taint{Key: "example.com/dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}
	unreachableExec := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	for _, tc := range []struct {
		name          string
		conditions    []corev1.NodeCondition
		unschedulable bool
		taints        []corev1.Taint
		want          []string
		changed       bool
	}{
		{
			name:       "ready node loses the not-ready taint it was created with",
			conditions: []corev1.NodeCondition{ready},
			taints:     []corev1.Taint{noSched(corev1.TaintNodeNotReady)},
			want:       []string{}, changed: true,
		},
		{
			name:       "not ready",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, corev1.ConditionFalse)},
			want:       []string{"node.kubernetes.io/not-ready:NoSchedule"}, changed: true,
		},
		{
			name:       "unknown swaps not-ready for unreachable, keeps the NoExecute taint",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, corev1.ConditionUnknown)},
			taints:     []corev1.Taint{noSched(corev1.TaintNodeNotReady), unreachableExec},
			want:       []string{"node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"}, changed: true,
		},
		{
			name: "pressure and network conditions",
			conditions: []corev1.NodeCondition{ready,
				cond(corev1.NodeMemoryPressure, corev1.ConditionTrue), cond(corev1.NodeDiskPressure, corev1.ConditionTrue),
				cond(corev1.NodePIDPressure, corev1.ConditionTrue), cond(corev1.NodeNetworkUnavailable, corev1.ConditionTrue)},
			want: []string{"node.kubernetes.io/disk-pressure:NoSchedule", "node.kubernetes.io/memory-pressure:NoSchedule",
				"node.kubernetes.io/network-unavailable:NoSchedule", "node.kubernetes.io/pid-pressure:NoSchedule"},
			changed: true,
		},
		{
			name: "pressure relieved",
			conditions: []corev1.NodeCondition{ready,
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse), cond(corev1.NodeDiskPressure, corev1.ConditionUnknown)},
			taints:  []corev1.Taint{noSched(corev1.TaintNodeMemoryPressure), noSched(corev1.TaintNodeDiskPressure)},
			want:    []string{},
			changed: true,
		},
		{
			name:       "cordoned",
			conditions: []corev1.NodeCondition{ready}, unschedulable: true,
			want: []string{"node.kubernetes.io/unschedulable:NoSchedule"}, changed: true,
		},
		{
			name:       "uncordoned",
			conditions: []corev1.NodeCondition{ready},
			taints:     []corev1.Taint{noSched(corev1.TaintNodeUnschedulable)},
			want:       []string{}, changed: true,
		},
		{
			name:       "user taints and other effects of the same keys are left alone",
			conditions: []corev1.NodeCondition{ready},
			taints: []corev1.Taint{userTaint, unreachableExec,
				{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectPreferNoSchedule}},
			want: []string{"example.com/dedicated:NoSchedule", "node.kubernetes.io/memory-pressure:PreferNoSchedule",
				"node.kubernetes.io/unreachable:NoExecute"},
		},
		{
			name:       "already right",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, corev1.ConditionFalse)}, unschedulable: true,
			taints: []corev1.Taint{noSched(corev1.TaintNodeUnschedulable), userTaint, noSched(corev1.TaintNodeNotReady)},
			want:   []string{"example.com/dedicated:NoSchedule", "node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/unschedulable:NoSchedule"},
		},
		{
			name:       "duplicate dropped",
			conditions: []corev1.NodeCondition{cond(corev1.NodeReady, corev1.ConditionFalse)},
			taints:     []corev1.Taint{noSched(corev1.TaintNodeNotReady), noSched(corev1.TaintNodeNotReady)},
			want:       []string{"node.kubernetes.io/not-ready:NoSchedule"}, changed: true,
		},
		{
			// As upstream: without a Ready condition nothing calls for the
			// not-ready taint; once the grace period passes the node is
			// marked Unknown and gets the unreachable one.
			name:   "no conditions yet",
			taints: []corev1.Taint{noSched(corev1.TaintNodeNotReady)},
			want:   []string{}, changed: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := &corev1.Node{
				Spec:   corev1.NodeSpec{Unschedulable: tc.unschedulable, Taints: tc.taints},
				Status: corev1.NodeStatus{Conditions: tc.conditions},
			}
			before := node.DeepCopy()
			got, changed := noScheduleTaints(node, time.Unix(1000, 0))
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			if s := taintStrings(got); !reflect.DeepEqual(s, tc.want) {
				t.Errorf("taints %v, want %v", s, tc.want)
			}
			if !reflect.DeepEqual(node, before) {
				t.Error("input node modified")
			}
		})
	}
}

func TestNoScheduleTaintsStampNewOnly(t *testing.T) {
	old := metav1.NewTime(time.Unix(10, 0))
	node := &corev1.Node{
		Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{
			{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &old},
		}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{cond(corev1.NodeReady, corev1.ConditionFalse)}},
	}
	now := time.Unix(1000, 0)
	got, _ := noScheduleTaints(node, now)
	if len(got) != 2 {
		t.Fatalf("taints %v", got)
	}
	if !got[0].TimeAdded.Equal(&old) {
		t.Errorf("kept taint restamped: %v", got[0].TimeAdded)
	}
	if got[1].Key != corev1.TaintNodeNotReady || got[1].TimeAdded == nil || !got[1].TimeAdded.Time.Equal(now) {
		t.Errorf("added taint %+v, want not-ready stamped %v", got[1], now)
	}
}

// TestNoScheduleTaintingPass drives the controller against an API server:
// the not-ready taint a new node gets from TaintNodesByCondition admission
// goes once the node reports ready, and the others follow the node's
// conditions and cordon.
func TestNoScheduleTaintingPass(t *testing.T) {
	h := newHarness(t)
	// As admitted: testserver runs without the admission chain.
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{noSched(corev1.TaintNodeNotReady)}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionFalse, LastHeartbeatTime: metav1.NewTime(h.clock.Now()),
		}}},
	}
	if _, err := h.c.CoreV1().Nodes().Create(h.ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	taints := func() []string {
		t.Helper()
		n, err := h.c.CoreV1().Nodes().Get(h.ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return taintStrings(n.Spec.Taints)
	}
	waitSynced(t, h.c, h.f)
	if err := h.ctrl.Monitor(h.ctx); err != nil {
		t.Fatal(err)
	}
	// Not ready yet, and the only node: fully disrupted, so no NoExecute
	// taint, but the NoSchedule one stays.
	if s := taints(); !reflect.DeepEqual(s, []string{"node.kubernetes.io/not-ready:NoSchedule"}) {
		t.Fatalf("not-ready node's taints %v", s)
	}
	h.alive["n1"] = true
	h.pass()
	if s := taints(); len(s) != 0 {
		t.Fatalf("ready node's taints %v, want none", s)
	}

	// Cordon it and report memory pressure: both taints in one pass.
	n, _ = h.c.CoreV1().Nodes().Get(h.ctx, "n1", metav1.GetOptions{})
	n.Spec.Unschedulable = true
	if _, err := h.c.CoreV1().Nodes().Update(h.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	beat(t, h.c, "n1", h.clock.Now())
	n, _ = h.c.CoreV1().Nodes().Get(h.ctx, "n1", metav1.GetOptions{})
	n.Status.Conditions = append(n.Status.Conditions, cond(corev1.NodeMemoryPressure, corev1.ConditionTrue))
	if _, err := h.c.CoreV1().Nodes().UpdateStatus(h.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, h.c, h.f)
	if err := h.ctrl.Monitor(h.ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"node.kubernetes.io/memory-pressure:NoSchedule", "node.kubernetes.io/unschedulable:NoSchedule"}
	if s := taints(); !reflect.DeepEqual(s, want) {
		t.Fatalf("cordoned node under memory pressure: taints %v, want %v", s, want)
	}

	// Silent past the grace period: Ready goes Unknown, and the node is
	// tainted unreachable in the same pass. n1 is the only node, so the
	// cluster is fully disrupted and gets no NoExecute taint.
	h.alive["n1"] = false
	h.clock.Step(41 * time.Second)
	h.pass()
	want = append([]string{"node.kubernetes.io/unreachable:NoSchedule"}, want...)
	sort.Strings(want)
	if s := taints(); !reflect.DeepEqual(s, want) {
		t.Fatalf("silent node's taints %v, want %v", s, want)
	}
}
