package manager

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// startAuthServer runs an API server with RBAC's default policy and
// ServiceAccount tokens; the bearer token "admin" is in system:masters and
// "kcm" is the controller manager's user.
func startAuthServer(t *testing.T) string {
	t.Helper()
	key, err := satoken.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := satoken.NewIssuer("https://kubernetes.default.svc.cluster.local", key)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*authn.User{
		"admin": {Name: "admin", Groups: []string{"system:masters", "system:authenticated"}},
		"kcm":   {Name: "system:kube-controller-manager", Groups: []string{"system:authenticated"}},
	}
	lookup := func(token string) (*authn.User, bool) {
		u, ok := users[token]
		return u, ok
	}
	return testserver.StartWith(t, testserver.Options{
		Authenticator:        authn.NewBearerToken(lookup),
		AccessControl:        true,
		ServiceAccountTokens: &apiserver.ServiceAccountTokens{Issuer: issuer},
	}).URL
}

// TestControllersRunAsServiceAccounts runs the manager as its own user with
// per-controller credentials against the default policy: each controller
// gets a ServiceAccount, and their writes are allowed.
func TestControllersRunAsServiceAccounts(t *testing.T) {
	url := startAuthServer(t)
	admin := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, BearerToken: "admin", QPS: -1})
	kcmConfig := &rest.Config{Host: url, BearerToken: "kcm", QPS: -1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = Run(ctx, Config{RESTConfig: kcmConfig, LeaderElect: true, UseServiceAccountCredentials: true, Logger: quietLog()})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })

	// The manager's own identity may watch everything but not write pods.
	kcm := kubernetes.NewForConfigOrDie(kcmConfig)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if _, err := kcm.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("manager user creating a pod: %v, want Forbidden", err)
	}

	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "default service account in team", func() bool {
		_, err := admin.CoreV1().ServiceAccounts("team").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	labels := map[string]string{"app": "web"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod.Spec},
		},
	}
	if _, err := admin.AppsV1().ReplicaSets("team").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica set pods", func() bool {
		pods, err := admin.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 2
	})
	eventually(t, "replica set status", func() bool {
		got, err := admin.AppsV1().ReplicaSets("team").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && got.Status.Replicas == 2
	})
	// Further identities: a Deployment's ReplicaSet, a Service's
	// Endpoints and EndpointSlice (written by two identities).
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api"}}, Spec: pod.Spec},
		},
	}
	if _, err := admin.AppsV1().Deployments("team").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := admin.CoreV1().Services("team").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deployment's replica set", func() bool {
		list, err := admin.AppsV1().ReplicaSets("team").List(ctx, metav1.ListOptions{LabelSelector: "app=api"})
		return err == nil && len(list.Items) == 1
	})
	eventually(t, "endpoints", func() bool {
		_, err := admin.CoreV1().Endpoints("team").Get(ctx, "web", metav1.GetOptions{})
		return err == nil
	})
	eventually(t, "endpoint slice", func() bool {
		list, err := admin.DiscoveryV1().EndpointSlices("team").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web"})
		return err == nil && len(list.Items) == 1
	})
	// The policy status controller may apply a policy's status.
	vap := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "typed"}}
	vap.Spec.MatchConstraints = &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
		RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
		},
	}}}
	vap.Spec.Validations = []admissionregistrationv1.Validation{{Expression: "object.spec.replicaz > 0"}}
	if _, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, vap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "policy type-checked", func() bool {
		got, err := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, "typed", metav1.GetOptions{})
		return err == nil && got.Status.ObservedGeneration == 1 && got.Status.TypeChecking != nil &&
			len(got.Status.TypeChecking.ExpressionWarnings) == 1
	})
	// The namespace controller empties and finalizes a deleted namespace.
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps("gone").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := admin.CoreV1().Namespaces().Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace removed", func() bool {
		_, err := admin.CoreV1().Namespaces().Get(ctx, "gone", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	for _, sa := range []string{"replicaset-controller", "service-account-controller", "deployment-controller",
		"endpoint-controller", "endpointslice-controller", "namespace-controller"} {
		if _, err := admin.CoreV1().ServiceAccounts("kube-system").Get(ctx, sa, metav1.GetOptions{}); err != nil {
			t.Errorf("service account kube-system/%s: %v", sa, err)
		}
	}
	lease, err := admin.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Errorf("leader election lease: %v %+v", err, lease)
	}
}
