package rootcacert

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func namespace(name string, phase corev1.NamespacePhase) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: phase}}
}

func start(t *testing.T, objs ...any) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset()
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			if _, err := client.CoreV1().Namespaces().Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case *corev1.ConfigMap:
			if _, err := client.CoreV1().ConfigMaps(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, client, factory, []byte(testCA), slog.New(slog.DiscardHandler))
	controllertest.Run(t, context.Background(), factory, c.Run)
	return client
}

func published(client *fake.Clientset, ns string) bool {
	cm, err := client.CoreV1().ConfigMaps(ns).Get(context.Background(), ConfigMapName, metav1.GetOptions{})
	return err == nil && upToDate(cm, []byte(testCA))
}

func TestPublishesInEveryActiveNamespace(t *testing.T) {
	client := start(t, namespace("default", corev1.NamespaceActive), namespace("kube-system", corev1.NamespaceActive),
		namespace("going", corev1.NamespaceTerminating))
	controllertest.WaitFor(t, "default", func() bool { return published(client, "default") })
	controllertest.WaitFor(t, "kube-system", func() bool { return published(client, "kube-system") })

	cm, _ := client.CoreV1().ConfigMaps("default").Get(context.Background(), ConfigMapName, metav1.GetOptions{})
	if cm.Data[DataKey] != testCA || cm.Annotations[DescriptionAnnotation] == "" {
		t.Errorf("configmap = %+v", cm)
	}

	// A namespace created later gets one too.
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), namespace("late", corev1.NamespaceActive), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "late", func() bool { return published(client, "late") })

	if _, err := client.CoreV1().ConfigMaps("going").Get(context.Background(), ConfigMapName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("terminating namespace got the configmap (err %v)", err)
	}
}

func TestRecreatesDeleted(t *testing.T) {
	client := start(t, namespace("ns", corev1.NamespaceActive))
	controllertest.WaitFor(t, "first publication", func() bool { return published(client, "ns") })
	if err := client.CoreV1().ConfigMaps("ns").Delete(context.Background(), ConfigMapName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, "recreation", func() bool { return published(client, "ns") })
}

func TestRepairsEdits(t *testing.T) {
	for name, edit := range map[string]func(cm *corev1.ConfigMap){
		"data":        func(cm *corev1.ConfigMap) { cm.Data[DataKey] = "forged" },
		"extra key":   func(cm *corev1.ConfigMap) { cm.Data["other"] = "x" },
		"binary data": func(cm *corev1.ConfigMap) { cm.BinaryData = map[string][]byte{"b": {1}} },
		"annotation":  func(cm *corev1.ConfigMap) { delete(cm.Annotations, DescriptionAnnotation) },
	} {
		t.Run(name, func(t *testing.T) {
			client := start(t, namespace("ns", corev1.NamespaceActive))
			controllertest.WaitFor(t, "first publication", func() bool { return published(client, "ns") })
			cm, err := client.CoreV1().ConfigMaps("ns").Get(context.Background(), ConfigMapName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			edit(cm)
			if _, err := client.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			controllertest.WaitFor(t, "repair", func() bool { return published(client, "ns") })
		})
	}
}

func TestExistingStaleConfigMapIsRepairedAtStart(t *testing.T) {
	client := start(t, namespace("ns", corev1.NamespaceActive), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: "ns", Labels: map[string]string{"keep": "me"}},
		Data:       map[string]string{DataKey: "old CA"},
	})
	controllertest.WaitFor(t, "repair", func() bool { return published(client, "ns") })
	cm, _ := client.CoreV1().ConfigMaps("ns").Get(context.Background(), ConfigMapName, metav1.GetOptions{})
	if cm.Labels["keep"] != "me" {
		t.Errorf("labels lost: %v", cm.Labels)
	}
}
