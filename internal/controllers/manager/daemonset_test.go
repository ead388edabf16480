package manager

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestDaemonSetFollowsNodes(t *testing.T) {
	c, ctx := startManager(t)
	readyStandIn(ctx, c)
	mkNode := func(name string, taints ...corev1.Taint) {
		if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Taints: taints}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkNode("n1")
	mkNode("n2", corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule})
	labels := map[string]string{"app": "agent"}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.35"}}}},
	}}
	if _, err := c.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podNodes := func() map[string]string {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			for _, term := range p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
				out[term.MatchFields[0].Values[0]] = p.Spec.Containers[0].Image
			}
		}
		return out
	}
	eventually(t, "pod on n1 only", func() bool { n := podNodes(); return len(n) == 1 && n["n1"] != "" })
	mkNode("n3")
	eventually(t, "pod on new node", func() bool { n := podNodes(); return len(n) == 2 && n["n3"] != "" })
	if err := c.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod of removed node gone", func() bool { n := podNodes(); return len(n) == 1 && n["n3"] != "" })
	eventually(t, "status", func() bool {
		got, _ := c.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
		return got.Status.DesiredNumberScheduled == 1 && got.Status.NumberReady == 1 && got.Status.UpdatedNumberScheduled == 1
	})
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}`)
	if _, err := c.AppsV1().DaemonSets("default").Patch(ctx, "agent", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rolling update", func() bool { n := podNodes(); return len(n) == 1 && n["n3"] == "busybox:1.36" })
	revs, err := c.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{})
	if err != nil || len(revs.Items) != 2 {
		t.Fatalf("controller revisions: %v %d", err, len(revs.Items))
	}
}

func TestDaemonSetSurge(t *testing.T) {
	c, ctx := startManager(t)
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "surge"}
	one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "surge"}, Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxSurge: &one, MaxUnavailable: &zero}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.35"}}}},
	}}
	if _, err := c.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	images := func() []string {
		pods, _ := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=surge"})
		var out []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				out = append(out, p.Spec.Containers[0].Image)
			}
		}
		return out
	}
	readyStandIn(ctx, c)
	eventually(t, "first pod", func() bool { return len(images()) == 1 })
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}}}`)
	if _, err := c.AppsV1().DaemonSets("default").Patch(ctx, "surge", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// maxUnavailable 0: the node is never without a daemon pod.
	sawNone := false
	eventually(t, "surged update", func() bool {
		imgs := images()
		sawNone = sawNone || len(imgs) == 0
		return len(imgs) == 1 && imgs[0] == "busybox:1.36"
	})
	if sawNone {
		t.Fatal("the node was left without a daemon pod during a surge update")
	}
}
