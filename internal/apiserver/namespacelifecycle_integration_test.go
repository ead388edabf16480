package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestNamespaceLifecycleAdmission: content is created only in a namespace
// that exists, including one created a moment ago, and never in one being
// deleted, with upstream's errors.
func TestNamespaceLifecycleAdmission(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	cms := func(ns string) error {
		_, err := s.Client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "c-"}}, metav1.CreateOptions{})
		return err
	}
	if err := cms("nowhere"); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `namespaces "nowhere" not found`) {
		t.Errorf("create in a missing namespace: %v, want namespaces \"nowhere\" not found", err)
	}
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms("fresh"); err != nil {
		t.Fatalf("create right after the namespace: %v", err)
	}
	// Without the namespace controller the namespace keeps its finalizer
	// and stays Terminating.
	if err := s.Client.CoreV1().Namespaces().Delete(ctx, "fresh", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testserver.Eventually(t, "creates refused in the terminating namespace", func() bool {
		err := cms("fresh")
		return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "unable to create new content in namespace fresh because it is being terminated")
	})
}
