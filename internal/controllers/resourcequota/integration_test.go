package resourcequota_test

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/controllers/resourcequota"
	"github.com/skiff-dev/skiff/internal/testserver"

	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
)

// The controller, acting as its upstream ServiceAccount with only the
// default policy's role, keeps status current, and the API server refuses
// creates over the quota with upstream's messages.
func TestQuotaEnforcedByServer(t *testing.T) {
	ctx := context.Background()
	users := func(token string) (*authn.User, bool) {
		switch token {
		case "admin":
			return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
		case "rq":
			return &authn.User{Name: "system:serviceaccount:kube-system:resourcequota-controller",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}}, true
		}
		return nil, false
	}
	s := testserver.StartWith(t, testserver.Options{Authenticator: authn.NewBearerToken(users), AccessControl: true})
	admin, rq := s.ClientWithToken("admin"), s.ClientWithToken("rq")
	rqConfig := rest.CopyConfig(s.Config)
	rqConfig.BearerToken = "rq"
	runController(t, rq, rqConfig)

	const ns = "quota-test"
	mustCreate(t, func() error {
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		return err
	})
	hard := corev1.ResourceList{
		"count/configmaps": resource.MustParse("2"),
		"pods":             resource.MustParse("5"),
		"limits.cpu":       resource.MustParse("1"),
		// No typed informer: counted with a metadata informer.
		"count/serviceaccounts": resource.MustParse("1"),
	}
	mustCreate(t, func() error {
		_, err := admin.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{})
		return err
	})
	waitUsed(t, admin, ns, "count/configmaps", "0")
	waitUsed(t, admin, ns, "count/serviceaccounts", "1")
	_, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "sa2"}}, metav1.CreateOptions{})
	want := `serviceaccounts "sa2" is forbidden: exceeded quota: q, requested: count/serviceaccounts=1, used: count/serviceaccounts=1, limited: count/serviceaccounts=1`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("second service account: %v\nwant %s", err, want)
	}

	// Two creates fill the quota; once the controller has counted them the
	// third is refused. (Back-to-back creates racing the controller's own
	// status write can still slip past: see docs/architecture.md.)
	for _, name := range []string{"a", "b"} {
		mustCreate(t, func() error { return createConfigMap(ctx, admin, ns, name) })
	}
	waitUsed(t, admin, ns, "count/configmaps", "2")
	err = createConfigMap(ctx, admin, ns, "c")
	want = `configmaps "c" is forbidden: exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("third configmap: %v\nwant %s", err, want)
	}
	waitUsed(t, admin, ns, "count/configmaps", "2")

	// Deleting one frees room once the controller has counted again.
	if err := admin.CoreV1().ConfigMaps(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUsed(t, admin, ns, "count/configmaps", "1")
	mustCreate(t, func() error { return createConfigMap(ctx, admin, ns, "c") })

	// A pod must state what the quota limits.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c1", Image: "busybox"}}}}
	_, err = admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	want = `pods "p" is forbidden: failed quota: q: must specify limits.cpu for: c1`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("pod without limits: %v\nwant %s", err, want)
	}
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("600m")}
	mustCreate(t, func() error { _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); return err })
	waitUsed(t, admin, ns, "limits.cpu", "600m")
	waitUsed(t, admin, ns, "pods", "1")
	pod.Name = "p2"
	_, err = admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	want = `pods "p2" is forbidden: exceeded quota: q, requested: limits.cpu=600m, used: limits.cpu=600m, limited: limits.cpu=1`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("pod over cpu: %v\nwant %s", err, want)
	}
}

func runController(t *testing.T, client kubernetes.Interface, cfg *rest.Config) {
	factory := informers.NewSharedInformerFactory(client, 0)
	c := resourcequota.New(client, factory, slog.New(slog.DiscardHandler))
	c.UseMetadata(metadata.NewForConfigOrDie(cfg), client.Discovery())
	controllertest.Run(t, context.Background(), factory, c.Run)
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

func createConfigMap(ctx context.Context, c kubernetes.Interface, ns, name string) error {
	_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return err
}

func waitUsed(t *testing.T, c kubernetes.Interface, ns, res, want string) {
	t.Helper()
	testserver.Eventually(t, res+" used = "+want, func() bool {
		q, err := c.CoreV1().ResourceQuotas(ns).Get(context.Background(), "q", metav1.GetOptions{})
		if err != nil {
			return false
		}
		got, ok := q.Status.Used[corev1.ResourceName(res)]
		return ok && got.Cmp(resource.MustParse(want)) == 0
	})
}
