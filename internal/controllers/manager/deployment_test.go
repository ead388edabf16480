package manager

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// readyStandIn marks pods Running and Ready, as a kubelet would, since
// these tests run no node agent.
func readyStandIn(ctx context.Context, c kubernetes.Interface) {
	go func() {
		for ctx.Err() == nil {
			pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodRunning {
						continue
					}
					p.Status.Phase = corev1.PodRunning
					p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
					_, _ = c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{})
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
}

func deploymentObj(name string, replicas int32, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
			},
		},
	}
}

func rolledOut(ctx context.Context, c kubernetes.Interface, name string) bool {
	d, err := c.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	want := *d.Spec.Replicas
	// kubectl rollout status's test.
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want &&
		d.Status.Replicas == want && d.Status.AvailableReplicas == want
}

func setsOf(t *testing.T, ctx context.Context, c kubernetes.Interface, app string) []appsv1.ReplicaSet {
	t.Helper()
	l, err := c.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func TestDeploymentRollingUpdateAndRollback(t *testing.T) {
	c, ctx := startManager(t)
	readyStandIn(ctx, c)
	deps := c.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, deploymentObj("web", 3, "busybox:1.35"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first rollout", func() bool { return rolledOut(ctx, c, "web") })
	sets := setsOf(t, ctx, c, "web")
	if len(sets) != 1 || sets[0].Annotations["deployment.kubernetes.io/revision"] != "1" || sets[0].Labels["pod-template-hash"] == "" {
		t.Fatalf("first replica set: %+v", sets)
	}
	first := sets[0].Name

	// Roll to a new image; surge never exceeds 3 + 25% (rounded up: 1) pods.
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}`)
	if _, err := deps.Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	maxSeen := int32(0)
	eventually(t, "second rollout", func() bool {
		var total int32
		for _, rs := range setsOf(t, ctx, c, "web") {
			total += *rs.Spec.Replicas
		}
		maxSeen = max(maxSeen, total)
		return rolledOut(ctx, c, "web") && len(setsOf(t, ctx, c, "web")) == 2
	})
	if maxSeen > 4 {
		t.Fatalf("rollout ran %d pods at once, more than replicas+maxSurge", maxSeen)
	}
	for _, rs := range setsOf(t, ctx, c, "web") {
		if rs.Name == first && *rs.Spec.Replicas != 0 {
			t.Fatalf("old set still has %d replicas", *rs.Spec.Replicas)
		}
		if rs.Name != first && rs.Annotations["deployment.kubernetes.io/revision"] != "2" {
			t.Fatalf("new set revision %q", rs.Annotations["deployment.kubernetes.io/revision"])
		}
	}
	d, _ := deps.Get(ctx, "web", metav1.GetOptions{})
	var progressing *appsv1.DeploymentCondition
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			progressing = &d.Status.Conditions[i]
		}
	}
	if progressing == nil || progressing.Reason != "NewReplicaSetAvailable" {
		t.Fatalf("Progressing condition %+v", progressing)
	}

	// Roll back to the first template (what kubectl rollout undo does):
	// the first set becomes current again, as revision 3.
	rollback := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.35"}]}}}}`)
	if _, err := deps.Patch(ctx, "web", types.StrategicMergePatchType, rollback, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rollback", func() bool {
		if !rolledOut(ctx, c, "web") {
			return false
		}
		for _, rs := range setsOf(t, ctx, c, "web") {
			if rs.Name == first {
				return *rs.Spec.Replicas == 3 && rs.Annotations["deployment.kubernetes.io/revision"] == "3"
			}
		}
		return false
	})
	if n := len(setsOf(t, ctx, c, "web")); n != 2 {
		t.Fatalf("rollback created a new set: %d sets", n)
	}

	// Scale.
	sc, _ := deps.GetScale(ctx, "web", metav1.GetOptions{})
	sc.Spec.Replicas = 5
	if _, err := deps.UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "scaled to 5", func() bool {
		return rolledOut(ctx, c, "web") && func() bool {
			d, _ := deps.Get(ctx, "web", metav1.GetOptions{})
			return d.Status.AvailableReplicas == 5
		}()
	})

	// Deleting the deployment collects its sets and pods.
	bg := metav1.DeletePropagationBackground
	if err := deps.Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cascade", func() bool {
		pods, _ := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		return len(setsOf(t, ctx, c, "web")) == 0 && pods != nil && len(pods.Items) == 0
	})
}

func TestDeploymentRecreate(t *testing.T) {
	c, ctx := startManager(t)
	readyStandIn(ctx, c)
	d := deploymentObj("batch", 2, "busybox:1.35")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	deps := c.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first rollout", func() bool { return rolledOut(ctx, c, "batch") })
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}`)
	if _, err := deps.Patch(ctx, "batch", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "recreate rollout", func() bool {
		if !rolledOut(ctx, c, "batch") {
			return false
		}
		pods, _ := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=batch"})
		for _, p := range pods.Items {
			if p.Spec.Containers[0].Image != "busybox:1.36" {
				return false
			}
		}
		return true
	})
}

func TestDeploymentPauseAndResume(t *testing.T) {
	c, ctx := startManager(t)
	deps := c.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, deploymentObj("prop", 10, "busybox:1.35"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	readyStandIn(ctx, c)
	eventually(t, "first rollout", func() bool { return rolledOut(ctx, c, "prop") })
	// A paused deployment does not roll out a new template until resumed.
	patch := []byte(`{"spec":{"paused":true}}`)
	if _, err := deps.Patch(ctx, "prop", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	patch = []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}`)
	if _, err := deps.Patch(ctx, "prop", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(setsOf(t, ctx, c, "prop")); n != 1 {
		t.Fatalf("a paused deployment rolled out: %d sets", n)
	}
	if _, err := deps.Patch(ctx, "prop", types.StrategicMergePatchType, []byte(`{"spec":{"paused":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "resumed rollout", func() bool { return rolledOut(ctx, c, "prop") && len(setsOf(t, ctx, c, "prop")) == 2 })
}
