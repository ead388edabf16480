package podautoscaler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/controllers/controllertest"
	"github.com/skiff-dev/skiff/internal/controllers/podautoscaler"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestAgainstServer runs the controller as its upstream ServiceAccount,
// with only the default policy's role, against Skiff's API server: it
// scales a Deployment and a custom resource through their scale
// subresources (found through discovery), reads metrics.k8s.io (which has
// no samples here: there are no nodes), and writes status that kubectl
// shows.
func TestAgainstServer(t *testing.T) {
	ctx := context.Background()
	users := func(token string) (*authn.User, bool) {
		switch token {
		case "admin":
			return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
		case "hpa":
			return &authn.User{Name: "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}}, true
		}
		return nil, false
	}
	s := testserver.StartWith(t, testserver.Options{Authenticator: authn.NewBearerToken(users), AccessControl: true})
	admin := s.ClientWithToken("admin")
	hpaConfig := rest.CopyConfig(s.Config)
	hpaConfig.BearerToken = "hpa"
	hpaClient := kubernetes.NewForConfigOrDie(hpaConfig)

	// The shared informers use an identity that may read everything, as
	// the manager's does.
	factory := informers.NewSharedInformerFactory(admin, 0)
	c, err := podautoscaler.NewForConfig(hpaConfig, hpaClient, factory, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Run(t, ctx, factory, c.Run)

	if _, err := admin.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// kubectl sends a bearer token only over TLS: put a TLS front on the
	// plain test server.
	front := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(mustParseURL(t, s.URL)))
	t.Cleanup(front.Close)
	kubeconfig := writeKubeconfig(t, front.URL, "admin")
	kubectlPath, haveKubectl := findKubectl()
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(kubectlPath, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if haveKubectl {
		kubectl("autoscale", "deployment", "web", "--cpu-percent=50", "--min=2", "--max=5")
	} else {
		createHPA(t, admin, "web", "apps/v1", "Deployment", 2)
	}
	// Below its minimum, the target is scaled up without metrics.
	testserver.Eventually(t, "deployment scaled to the HPA's minimum", func() bool {
		d, err := admin.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 2
	})
	testserver.Eventually(t, "a SuccessfulRescale event", func() bool {
		return hasEvent(ctx, admin, "web", "SuccessfulRescale", "New size: 2; reason: Current number of replicas below Spec.MinReplicas")
	})
	hpa := waitStatus(t, admin, "web", func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return h.Status.DesiredReplicas == 2 && h.Status.LastScaleTime != nil
	})
	if hpa.Status.CurrentReplicas != 1 {
		t.Errorf("status %+v", hpa.Status)
	}
	if haveKubectl {
		out := kubectl("get", "hpa", "web")
		t.Logf("kubectl get hpa:\n%s", out)
		for _, want := range []string{"REFERENCE", "TARGETS", "Deployment/web", "cpu: <unknown>/50%", "2", "5"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl get hpa lacks %q:\n%s", want, out)
			}
		}
	}
	// Within range, the controller asks metrics.k8s.io, which has no
	// sample for pods no node runs.
	waitStatus(t, admin, "web", func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		for _, c := range h.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive && c.Status == corev1.ConditionFalse && c.Reason == "FailedGetResourceMetric" &&
				strings.Contains(c.Message, "no metrics returned from resource metrics API") {
				return true
			}
		}
		return false
	})

	// A custom resource with a scale subresource, defined after the
	// controller started.
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Scale: &apiextensionsv1.CustomResourceSubresourceScale{
					SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptr.To(".status.selector")}},
			}},
		},
	}
	if err := admin.Discovery().RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").
		Body(mustJSON(t, crd)).SetHeader("Content-Type", "application/json").Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	adminConfig := rest.CopyConfig(s.Config)
	adminConfig.BearerToken = "admin"
	dyn := dynamic.NewForConfigOrDie(adminConfig)
	widgets := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}).Namespace("default")
	w := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"},
		"spec": map[string]any{"replicas": int64(1)},
	}}
	testserver.Eventually(t, "the CRD served", func() bool {
		_, err := widgets.Create(ctx, w, metav1.CreateOptions{})
		return err == nil
	})
	createHPA(t, admin, "widget", "example.com/v1", "Widget", 3)
	testserver.Eventually(t, "widget scaled to 3", func() bool {
		got, err := widgets.Get(ctx, "w", metav1.GetOptions{})
		if err != nil {
			return false
		}
		n, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas")
		return n == 3
	})
}

func createHPA(t *testing.T, client kubernetes.Interface, name, apiVersion, kind string, minReplicas int32) {
	t.Helper()
	_, err := client.AutoscalingV2().HorizontalPodAutoscalers("default").Create(context.Background(), &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: apiVersion, Kind: kind, Name: map[string]string{"Deployment": "web", "Widget": "w"}[kind]},
			MinReplicas:    ptr.To(minReplicas), MaxReplicas: 5,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func waitStatus(t *testing.T, client kubernetes.Interface, name string, ok func(*autoscalingv2.HorizontalPodAutoscaler) bool) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	var h *autoscalingv2.HorizontalPodAutoscaler
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		h, err = client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("HPA %s never reached the expected status; last: %+v", name, h.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasEvent(ctx context.Context, client kubernetes.Interface, object, reason, message string) bool {
	evs, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	for _, e := range evs.Items {
		if e.InvolvedObject.Kind == "HorizontalPodAutoscaler" && e.InvolvedObject.Name == object && e.Reason == reason &&
			e.Message == message && e.Source.Component == "horizontal-pod-autoscaler" {
			return true
		}
	}
	return false
}

func writeKubeconfig(t *testing.T, server, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %q}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
`, server, token)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// findKubectl prefers the newest pinned kubectl the e2e suite uses over
// whatever kubectl is on the PATH.
func findKubectl() (string, bool) {
	if _, err := os.Stat("/usr/lib/google-cloud-sdk/bin/kubectl.1.33"); err == nil {
		return "/usr/lib/google-cloud-sdk/bin/kubectl.1.33", true
	}
	p, err := exec.LookPath("kubectl")
	return p, err == nil
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
