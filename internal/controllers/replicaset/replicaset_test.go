package replicaset

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func TestSlowStartStopsAtFirstFailingBatch(t *testing.T) {
	var calls atomic.Int32
	done, err := slowStart(100, func() error {
		if calls.Add(1) > 3 {
			return errors.New("refused")
		}
		return nil
	})
	if err == nil || done != 3 || calls.Load() != 7 {
		t.Fatalf("done=%d calls=%d err=%v, want batches 1+2 ok and the batch of 4 failing", done, calls.Load(), err)
	}
}

func start(t *testing.T) (kubernetes.Interface, context.Context) {
	t.Helper()
	ts := testserver.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := informers.NewSharedInformerFactory(ts.Client, 0)
	rs := New(ts.Client, f, slogDiscard())
	rc := NewForReplicationControllers(ts.Client, f, slogDiscard())
	f.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, c := range []*Controller{rs, rc} {
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait(); f.Shutdown() })
	return ts.Client, ctx
}

func rs(name string, replicas int32, image string) *appsv1.ReplicaSet {
	labels := map[string]string{"app": name}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
		},
	}
}

func pods(t *testing.T, c kubernetes.Interface, ctx context.Context, app string) []corev1.Pod {
	t.Helper()
	l, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testserver.Eventually(t, what, cond)
}

func TestScaleUpDownAdoptAndStatus(t *testing.T) {
	c, ctx := start(t)
	// An orphan that matches is adopted rather than duplicated.
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created, err := c.AppsV1().ReplicaSets("default").Create(ctx, rs("web", 3, "busybox"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 pods", func() bool { return len(pods(t, c, ctx, "web")) == 3 })
	time.Sleep(300 * time.Millisecond)
	ps := pods(t, c, ctx, "web")
	if len(ps) != 3 {
		t.Fatalf("%d pods, want exactly 3 (no over-creation)", len(ps))
	}
	for _, p := range ps {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.UID != created.UID {
			t.Fatalf("pod %s not controlled by the set: %v", p.Name, p.OwnerReferences)
		}
	}
	// Mark one ready, as a kubelet would; status follows.
	p := ps[0]
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "status", func() bool {
		got, _ := c.AppsV1().ReplicaSets("default").Get(ctx, "web", metav1.GetOptions{})
		return got.Status.Replicas == 3 && got.Status.ReadyReplicas == 1 && got.Status.AvailableReplicas == 1 &&
			got.Status.FullyLabeledReplicas == 3 && got.Status.ObservedGeneration == got.Generation
	})
	// Scale down keeps the ready pod.
	sc, _ := c.AppsV1().ReplicaSets("default").GetScale(ctx, "web", metav1.GetOptions{})
	sc.Spec.Replicas = 1
	if _, err := c.AppsV1().ReplicaSets("default").UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "1 pod", func() bool { return len(pods(t, c, ctx, "web")) == 1 })
	if left := pods(t, c, ctx, "web"); left[0].Name != p.Name {
		t.Fatalf("scale-down kept %s, want the ready pod %s", left[0].Name, p.Name)
	}
	// A pod whose labels no longer match is released and replaced.
	left := pods(t, c, ctx, "web")[0]
	left.Labels = map[string]string{"app": "other"}
	if _, err := c.CoreV1().Pods("default").Update(ctx, &left, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replacement", func() bool { return len(pods(t, c, ctx, "web")) == 1 && pods(t, c, ctx, "web")[0].Name != left.Name })
	eventually(t, "release", func() bool {
		got, _ := c.CoreV1().Pods("default").Get(ctx, left.Name, metav1.GetOptions{})
		return got != nil && metav1.GetControllerOf(got) == nil
	})
}

func TestRefusedPodsReportFailure(t *testing.T) {
	c, ctx := start(t)
	// The set is valid, but the API refuses its pods (unknown priority class).
	bad := rs("bad", 5, "busybox")
	bad.Spec.Template.Spec.PriorityClassName = "missing"
	if _, err := c.AppsV1().ReplicaSets("default").Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ReplicaFailure condition", func() bool {
		got, _ := c.AppsV1().ReplicaSets("default").Get(ctx, "bad", metav1.GetOptions{})
		for _, cond := range got.Status.Conditions {
			if cond.Type == appsv1.ReplicaSetReplicaFailure && cond.Status == corev1.ConditionTrue &&
				strings.Contains(cond.Message, "no PriorityClass with name missing was found") {
				return true
			}
		}
		return false
	})
	eventually(t, "FailedCreate event", func() bool {
		evs, _ := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=bad,reason=FailedCreate"})
		return evs != nil && len(evs.Items) > 0
	})
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestReplicationController(t *testing.T) {
	c, ctx := start(t)
	two := int32(2)
	labels := map[string]string{"app": "legacy"}
	rc := &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}, Spec: corev1.ReplicationControllerSpec{
		Replicas: &two, Selector: labels,
		Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}},
	}}
	created, err := c.CoreV1().ReplicationControllers("default").Create(ctx, rc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "2 pods", func() bool { return len(pods(t, c, ctx, "legacy")) == 2 })
	for _, p := range pods(t, c, ctx, "legacy") {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.Kind != "ReplicationController" || ref.UID != created.UID {
			t.Fatalf("pod owner %v", p.OwnerReferences)
		}
	}
	eventually(t, "status", func() bool {
		got, _ := c.CoreV1().ReplicationControllers("default").Get(ctx, "legacy", metav1.GetOptions{})
		return got.Status.Replicas == 2 && got.Status.ObservedGeneration == got.Generation
	})
}
