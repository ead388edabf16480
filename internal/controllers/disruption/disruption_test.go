package disruption

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

// runController runs the controller on a fake clientset holding objs until
// the test ends.
func runController(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	controllertest.Run(t, context.Background(), factory, c.Run)
	return client
}

// waitForStatus polls the budget until ok accepts it.
func waitForStatus(t *testing.T, client *fake.Clientset, ok func(policyv1.PodDisruptionBudgetStatus) bool) policyv1.PodDisruptionBudgetStatus {
	t.Helper()
	var last policyv1.PodDisruptionBudgetStatus
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		pdb, err := client.PolicyV1().PodDisruptionBudgets("ns").Get(ctx, "pdb", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = pdb.Status
		return ok(last), nil
	})
	if err != nil {
		t.Fatalf("status never as expected: %+v (%v)", last, err)
	}
	return last
}

func TestControllerWritesStatus(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "rs", Namespace: "ns", UID: "rs-uid"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](4)}}
	pdb := budget(nil, intOrStr("25%"))
	// An entry the eviction path left for a pod that was never deleted.
	pdb.Status.DisruptedPods = map[string]metav1.Time{"a": {Time: time.Now().Add(-5 * time.Minute)}}
	other := pod("other")
	other.Labels = map[string]string{"app": "b"}
	client := runController(t, rs, pdb, pod("a"), pod("b"), pod("c", notReady), other)

	st := waitForStatus(t, client, func(st policyv1.PodDisruptionBudgetStatus) bool { return st.ObservedGeneration == 3 })
	// Scale 4, 25% unavailable rounds up to 1: 3 desired; a and b healthy.
	if st.ExpectedPods != 4 || st.DesiredHealthy != 3 || st.CurrentHealthy != 2 || st.DisruptionsAllowed != 0 {
		t.Errorf("status = %+v, want expected 4, desired 3, healthy 2, allowed 0", st)
	}
	if len(st.DisruptedPods) != 0 {
		t.Errorf("expired disruptedPods entry kept: %v", st.DisruptedPods)
	}
	if c := findCondition(st.Conditions); c == nil || c.Reason != policyv1.InsufficientPodsReason || c.Status != metav1.ConditionFalse {
		t.Errorf("condition = %+v, want InsufficientPods", c)
	}

	// c turning ready and a fourth ready pod make one disruption allowed.
	if _, err := client.CoreV1().Pods("ns").UpdateStatus(context.Background(), pod("c"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("ns").Create(context.Background(), pod("d"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st = waitForStatus(t, client, func(st policyv1.PodDisruptionBudgetStatus) bool { return st.CurrentHealthy == 4 })
	if st.DisruptionsAllowed != 1 {
		t.Errorf("disruptionsAllowed = %d, want 1", st.DisruptionsAllowed)
	}
	if c := findCondition(st.Conditions); c == nil || c.Reason != policyv1.SufficientPodsReason || c.Status != metav1.ConditionTrue {
		t.Errorf("condition = %+v, want SufficientPods", c)
	}
}

func TestControllerFailsSafe(t *testing.T) {
	pdb := budget(nil, intOrStr("1"))
	pdb.Status.DisruptionsAllowed = 2 // stale: must drop to zero
	client := runController(t, pdb, pod("a", ownedBy("ReplicaSet", "apps/v1", "missing", "missing-uid")))

	st := waitForStatus(t, client, func(st policyv1.PodDisruptionBudgetStatus) bool {
		c := findCondition(st.Conditions)
		return c != nil && c.Reason == policyv1.SyncFailedReason
	})
	if st.DisruptionsAllowed != 0 {
		t.Errorf("disruptionsAllowed = %d after a failed sync, want 0", st.DisruptionsAllowed)
	}
}
