package nodelifecycle

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func TestNodeLossLeadsToEviction(t *testing.T) {
	ts := testserver.Start(t)
	c := ts.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := testingclock.NewFakeClock(time.Now())

	f := informers.NewSharedInformerFactory(c, 0)
	ctrl, err := New(c, f, Config{Clock: clk}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	defer func() { cancel(); f.Shutdown() }()

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(clk.Now()),
	}}}}
	if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A second, healthy node keeps the cluster out of full disruption,
	// where nothing would be evicted.
	healthy := node.DeepCopy()
	healthy.Name = "n2"
	if _, err := c.CoreV1().Nodes().Create(ctx, healthy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{NodeName: "n1",
		Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	created, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Spec.Tolerations) != 2 || *created.Spec.Tolerations[0].TolerationSeconds != 300 {
		t.Fatalf("default tolerations not added: %+v", created.Spec.Tolerations)
	}
	created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sync := func() {
		t.Helper()
		beat(t, c, "n2", clk.Now())
		waitSynced(t, c, f)
		if err := ctrl.Monitor(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.WaitForCacheSync(ctx.Done())
	sync()
	n, _ := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	n2, _ := c.CoreV1().Nodes().Get(ctx, "n2", metav1.GetOptions{})
	cidrs := map[string]bool{n.Spec.PodCIDR: true, n2.Spec.PodCIDR: true}
	if !cidrs["10.42.0.0/24"] || !cidrs["10.42.1.0/24"] {
		t.Fatalf("pod CIDRs %q and %q", n.Spec.PodCIDR, n2.Spec.PodCIDR)
	}
	if len(n.Spec.Taints) != 0 {
		t.Fatalf("healthy node tainted: %v", n.Spec.Taints)
	}
	clk.Step(41 * time.Second)
	sync()
	sync() // the taint follows the condition
	n, _ = c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if rc := readyCondition(n); rc == nil || rc.Status != corev1.ConditionUnknown {
		t.Fatalf("silent node's Ready condition: %+v", rc)
	}
	// The unreachable NoSchedule taint keeps new pods away; the NoExecute
	// one evicts.
	if s := taintStrings(n.Spec.Taints); !reflect.DeepEqual(s, []string{
		"node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"}) {
		t.Fatalf("silent node's taints: %v", s)
	}
	p, _ := c.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if p.Status.Conditions[0].Status != corev1.ConditionFalse || p.DeletionTimestamp != nil {
		t.Fatalf("pod on a lost node: ready=%s deleting=%v", p.Status.Conditions[0].Status, p.DeletionTimestamp)
	}
	clk.Step(301 * time.Second)
	sync()
	p, err = c.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err == nil && p.DeletionTimestamp == nil {
		t.Fatal("pod not evicted after its toleration ran out")
	}
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}
