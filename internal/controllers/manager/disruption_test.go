package manager

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestDisruptionControllerAsServiceAccount computes a budget's status as
// kube-system/disruption-controller under the default policy: expected pods
// from a Deployment's scale, and the status write allowed.
func TestDisruptionControllerAsServiceAccount(t *testing.T) {
	url := startAuthServer(t)
	admin := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, BearerToken: "admin", QPS: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = Run(ctx, Config{RESTConfig: &rest.Config{Host: url, BearerToken: "kcm", QPS: -1},
			UseServiceAccountCredentials: true, Logger: quietLog()})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })

	labels := map[string]string{"app": "api"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}},
		},
	}
	if _, err := admin.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	half := intstr.FromString("50%")
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &half, Selector: &metav1.LabelSelector{MatchLabels: labels}}}
	if _, err := admin.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var st policyv1.PodDisruptionBudgetStatus
	eventually(t, "budget status from the deployment's scale", func() bool {
		got, err := admin.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return false
		}
		st = got.Status
		return st.ObservedGeneration == got.Generation && st.ExpectedPods == 3
	})
	// 50% of 3 rounds up to 2; no pod is ready without a node.
	if st.DesiredHealthy != 2 || st.CurrentHealthy != 0 || st.DisruptionsAllowed != 0 {
		t.Errorf("status = %+v, want desired 2, healthy 0, allowed 0", st)
	}
	if len(st.Conditions) != 1 || st.Conditions[0].Reason != policyv1.InsufficientPodsReason {
		t.Errorf("conditions = %+v, want InsufficientPods", st.Conditions)
	}
}
