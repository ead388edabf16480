package deployment

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

// syncUntil runs the controller's sync for key until cond holds: the
// informers lag behind the writes each sync makes.
func syncUntil(t *testing.T, ctx context.Context, c *Controller, key, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if err := c.sync(ctx, key); err != nil {
			t.Logf("sync: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRevisionAndChangeCauseAnnotations(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	defer cancel()

	replicas := int32(2)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "d-uid",
			Annotations: map[string]string{ChangeCauseAnnotation: "create web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
			},
		},
	}
	deps := client.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	factory.WaitForCacheSync(ctx.Done())

	revisionIs := func(want string) func() bool {
		return func() bool {
			cur, err := c.dLister.Deployments("default").Get("web")
			return err == nil && cur.Annotations[RevisionAnnotation] == want
		}
	}
	syncUntil(t, ctx, c, "default/web", "deployment revision 1", revisionIs("1"))

	cur, err := deps.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Annotations[ChangeCauseAnnotation] = "update image"
	cur.Spec.Template.Spec.Containers[0].Image = "busybox:2"
	if _, err := deps.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	syncUntil(t, ctx, c, "default/web", "deployment revision 2", revisionIs("2"))

	sets, err := client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sets.Items) != 2 {
		t.Fatalf("%d replica sets, want 2", len(sets.Items))
	}
	want := map[string]string{"busybox:1": "create web", "busybox:2": "update image"}
	wantRev := map[string]string{"busybox:1": "1", "busybox:2": "2"}
	for _, rs := range sets.Items {
		img := rs.Spec.Template.Spec.Containers[0].Image
		if got := rs.Annotations[ChangeCauseAnnotation]; got != want[img] {
			t.Errorf("set %s change-cause %q, want %q", img, got, want[img])
		}
		if got := rs.Annotations[RevisionAnnotation]; got != wantRev[img] {
			t.Errorf("set %s revision %q, want %q", img, got, wantRev[img])
		}
		if rs.Annotations[DesiredReplicasAnnotation] != "2" || rs.Annotations[MaxReplicasAnnotation] == "" {
			t.Errorf("set %s replica annotations %v", img, rs.Annotations)
		}
	}
}

func TestSetRevisionKeepsHistory(t *testing.T) {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{RevisionAnnotation: "1"}}}
	if !setRevision(rs, 3) || rs.Annotations[RevisionAnnotation] != "3" || rs.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Fatalf("rollback to revision 1 as 3: %v", rs.Annotations)
	}
	if setRevision(rs, 2) {
		t.Fatal("an older revision replaced a newer one")
	}
	setRevision(rs, 5)
	if rs.Annotations[RevisionHistoryAnnotation] != "1,3" {
		t.Fatalf("history %q, want 1,3", rs.Annotations[RevisionHistoryAnnotation])
	}
}

func TestCopyAnnotationsSkipsDeploymentOwn(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		RevisionAnnotation: "7", "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a",
	}}}
	rs := &appsv1.ReplicaSet{}
	if !copyAnnotations(d, rs) || rs.Annotations["team"] != "a" || len(rs.Annotations) != 1 {
		t.Fatalf("copied %v", rs.Annotations)
	}
	if copyAnnotations(d, rs) {
		t.Fatal("second copy reported a change")
	}
}
