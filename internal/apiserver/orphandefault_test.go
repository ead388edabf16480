package apiserver_test

import (
	"context"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestDeleteOrphansByDefault pins upstream's default propagation: a DELETE
// that names no policy orphans the dependents of ReplicationControllers and
// batch/v1 Jobs (the orphan finalizer is added for the garbage collector)
// and deletes the dependents of everything else in the background.
func TestDeleteOrphansByDefault(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	one := int32(1)
	template := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "a"}},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	rcTemplate := template.DeepCopy()
	rcTemplate.Spec.RestartPolicy = corev1.RestartPolicyAlways
	if _, err := s.Client.CoreV1().ReplicationControllers("default").Create(ctx, &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "rc"},
		Spec:       corev1.ReplicationControllerSpec{Replicas: &one, Selector: map[string]string{"app": "a"}, Template: rcTemplate},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.BatchV1().Jobs("default").Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "job"},
		Spec:       batchv1.JobSpec{Template: template},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	bg := metav1.DeletePropagationBackground
	for _, tc := range []struct {
		what    string
		del     func(metav1.DeleteOptions) error
		get     func() (runtime.Object, error)
		opts    metav1.DeleteOptions
		orphans bool
	}{
		{"replication controller, no policy",
			func(o metav1.DeleteOptions) error {
				return s.Client.CoreV1().ReplicationControllers("default").Delete(ctx, "rc", o)
			},
			func() (runtime.Object, error) {
				return s.Client.CoreV1().ReplicationControllers("default").Get(ctx, "rc", metav1.GetOptions{})
			}, metav1.DeleteOptions{}, true},
		{"job, background asked (as kubectl does)",
			func(o metav1.DeleteOptions) error { return s.Client.BatchV1().Jobs("default").Delete(ctx, "job", o) },
			func() (runtime.Object, error) {
				return s.Client.BatchV1().Jobs("default").Get(ctx, "job", metav1.GetOptions{})
			},
			metav1.DeleteOptions{PropagationPolicy: &bg}, false},
		{"config map, no policy",
			func(o metav1.DeleteOptions) error {
				return s.Client.CoreV1().ConfigMaps("default").Delete(ctx, "cm", o)
			},
			func() (runtime.Object, error) {
				return s.Client.CoreV1().ConfigMaps("default").Get(ctx, "cm", metav1.GetOptions{})
			}, metav1.DeleteOptions{}, false},
	} {
		if err := tc.del(tc.opts); err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		obj, err := tc.get()
		if !tc.orphans {
			if err == nil {
				t.Errorf("%s: still stored after the delete", tc.what)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v, want it kept with the orphan finalizer for the garbage collector", tc.what, err)
		}
		m := obj.(metav1.Object)
		if m.GetDeletionTimestamp() == nil || !slices.Contains(m.GetFinalizers(), metav1.FinalizerOrphanDependents) {
			t.Errorf("%s: deletionTimestamp %v finalizers %v, want marked with %s", tc.what, m.GetDeletionTimestamp(), m.GetFinalizers(), metav1.FinalizerOrphanDependents)
		}
	}
}
