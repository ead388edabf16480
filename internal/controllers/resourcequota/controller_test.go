package resourcequota

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

func startController(t *testing.T) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	controllertest.Run(t, context.Background(), factory, c.Run)
	return client
}

func statusIs(t *testing.T, client *fake.Clientset, ns, name string, hard, used corev1.ResourceList) func() bool {
	return func() bool {
		q, err := client.CoreV1().ResourceQuotas(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && Equal(q.Status.Hard, hard) && Equal(q.Status.Used, used)
	}
}

func TestControllerTracksUsage(t *testing.T) {
	ctx := context.Background()
	client := startController(t)
	hard := rl("pods", "2", "configmaps", "5", "requests.cpu", "1")
	if _, err := client.CoreV1().ResourceQuotas("ns").Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "initial status", statusIs(t, client, "ns", "q", hard, rl("pods", "0", "configmaps", "0", "requests.cpu", "0")))

	p := pod("p1", resources(rl("cpu", "300m"), nil))
	if _, err := client.CoreV1().Pods("ns").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps("ns").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Objects of another namespace do not count.
	if _, err := client.CoreV1().ConfigMaps("other").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Creates are charged by admission, not recounted: a recount racing
	// the next create's charge could write that charge away.
	time.Sleep(300 * time.Millisecond)
	if !statusIs(t, client, "ns", "q", hard, rl("pods", "0", "configmaps", "0", "requests.cpu", "0"))() {
		t.Fatal("creates were recounted; admission charges them")
	}
	// An update that leaves the object's usage alone does not recount
	// either, as upstream's replenishment.
	p.Labels = map[string]string{"touched": "yes"}
	if _, err := client.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if !statusIs(t, client, "ns", "q", hard, rl("pods", "0", "configmaps", "0", "requests.cpu", "0"))() {
		t.Fatal("a label update was recounted; only usage changes are")
	}

	// A pod that finishes releases its resources: that update recounts.
	p.Status.Phase = corev1.PodSucceeded
	if _, err := client.CoreV1().Pods("ns").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "usage after pod finished", statusIs(t, client, "ns", "q", hard, rl("pods", "0", "configmaps", "1", "requests.cpu", "0")))

	// A spec change is reflected in status.hard.
	q, _ := client.CoreV1().ResourceQuotas("ns").Get(ctx, "q", metav1.GetOptions{})
	hard2 := rl("configmaps", "3")
	q.Spec.Hard = hard2
	if _, err := client.CoreV1().ResourceQuotas("ns").Update(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "status after spec change", statusIs(t, client, "ns", "q", hard2, rl("configmaps", "1")))

	if err := client.CoreV1().ConfigMaps("ns").Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "usage after delete", statusIs(t, client, "ns", "q", hard2, rl("configmaps", "0")))
}
