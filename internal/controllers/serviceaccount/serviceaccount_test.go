package serviceaccount

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

func namespace(name string, phase corev1.NamespacePhase) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: phase}}
}

func start(t *testing.T, nss ...*corev1.Namespace) (*fake.Clientset, *Controller) {
	t.Helper()
	client := fake.NewClientset()
	for _, ns := range nss {
		if _, err := client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	controllertest.Run(t, context.Background(), factory, c.Run)
	return client, c
}

func hasDefault(client *fake.Clientset, ns string) bool {
	_, err := client.CoreV1().ServiceAccounts(ns).Get(context.Background(), DefaultName, metav1.GetOptions{})
	return err == nil
}

// Every active namespace gets its default ServiceAccount, a new one too,
// and one deleted is made again.
func TestDefaultServiceAccountInActiveNamespaces(t *testing.T) {
	client, _ := start(t, namespace("default", corev1.NamespaceActive))
	controllertest.WaitFor(t, "default/default", func() bool { return hasDefault(client, "default") })

	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, namespace("later", corev1.NamespaceActive), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "later/default", func() bool { return hasDefault(client, "later") })

	if err := client.CoreV1().ServiceAccounts("later").Delete(ctx, DefaultName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "later/default made again", func() bool { return hasDefault(client, "later") })
}

// A terminating namespace gets none: its content is being deleted. The
// sync is called directly once the informers have the namespace, so the
// test proves nothing happened without sleeping.
func TestNoServiceAccountInTerminatingNamespace(t *testing.T) {
	client, c := start(t, namespace("going", corev1.NamespaceTerminating))
	controllertest.WaitFor(t, "the informer to have the namespace", func() bool {
		_, err := c.nsLister.Get("going")
		return err == nil
	})
	if err := c.sync(context.Background(), "going"); err != nil {
		t.Fatal(err)
	}
	if hasDefault(client, "going") {
		t.Error("a terminating namespace got a default ServiceAccount")
	}
	// A namespace that no longer exists is no error.
	if err := c.sync(context.Background(), "gone"); err != nil {
		t.Errorf("sync of a missing namespace: %v", err)
	}
}
