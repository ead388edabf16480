package manager

import (
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStatefulSetOrderedLifecycle(t *testing.T) {
	c, ctx := startManager(t)
	labels := map[string]string{"app": "db"}
	three := int32(3)
	set := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{
		Replicas: &three, ServiceName: "db",
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.35"}}}},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}},
	}}
	if _, err := c.AppsV1().StatefulSets("default").Create(ctx, set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				out = append(out, p.Name)
			}
		}
		sort.Strings(out)
		return out
	}
	ready := func(name string) {
		p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "db-0", func() bool { return len(names()) == 1 && names()[0] == "db-0" })
	time.Sleep(300 * time.Millisecond)
	if n := names(); len(n) != 1 {
		t.Fatalf("OrderedReady created %v before db-0 was ready", n)
	}
	p0, _ := c.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
	if p0.Spec.Hostname != "db-0" || p0.Spec.Subdomain != "db" || p0.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-db-0" {
		t.Fatalf("pod identity: hostname %q subdomain %q volumes %+v", p0.Spec.Hostname, p0.Spec.Subdomain, p0.Spec.Volumes)
	}
	ready("db-0")
	eventually(t, "db-1", func() bool { return len(names()) == 2 })
	ready("db-1")
	eventually(t, "db-2", func() bool { return len(names()) == 3 })
	ready("db-2")
	for _, claim := range []string{"data-db-0", "data-db-1", "data-db-2"} {
		if _, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, claim, metav1.GetOptions{}); err != nil {
			t.Fatalf("claim %s: %v", claim, err)
		}
	}
	eventually(t, "status", func() bool {
		got, _ := c.AppsV1().StatefulSets("default").Get(ctx, "db", metav1.GetOptions{})
		return got.Status.ReadyReplicas == 3 && got.Status.CurrentRevision == got.Status.UpdateRevision && got.Status.UpdatedReplicas == 3
	})
	// Scale down removes the highest ordinal; claims stay for re-use.
	sc, _ := c.AppsV1().StatefulSets("default").GetScale(ctx, "db", metav1.GetOptions{})
	sc.Spec.Replicas = 2
	if _, err := c.AppsV1().StatefulSets("default").UpdateScale(ctx, "db", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "scaled down", func() bool { n := names(); return len(n) == 2 && n[1] == "db-1" })
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-db-2", metav1.GetOptions{}); err != nil {
		t.Fatalf("claim of the removed pod was deleted: %v", err)
	}
}
