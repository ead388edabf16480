package apiserver_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func createLabelledNamespace(ctx context.Context, t *testing.T, c kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func TestPodSecurityAdmission(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t) // admission runs with access control on
	c := s.ClientWithToken("admin")
	createLabelledNamespace(ctx, t, c, "psa-enforce", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	createLabelledNamespace(ctx, t, c, "psa-warn", map[string]string{"pod-security.kubernetes.io/warn": "baseline"})

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}}}
	_, err := c.CoreV1().Pods("psa-enforce").Create(ctx, pod, metav1.CreateOptions{})
	want := `pods "web" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), ` +
		`unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), ` +
		`runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), ` +
		`seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("restricted namespace: got %v\nwant %s", err, want)
	}

	// The warn level is a Warning header on a successful create.
	body := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"root"},"spec":{"hostNetwork":true,"containers":[{"name":"app","image":"nginx"}]}}`
	post, _ := http.NewRequest(http.MethodPost, s.URL+"/api/v1/namespaces/psa-warn/pods", bytes.NewBufferString(body))
	post.Header.Set("Content-Type", "application/json")
	post.Header.Set("Authorization", "Bearer admin")
	resp, err := http.DefaultClient.Do(post)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("warn namespace: status %d", resp.StatusCode)
	}
	if w := resp.Header.Get("Warning"); w != `299 - "would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"` {
		t.Errorf("warning %q", w)
	}

	// Invalid labels are refused; enforcing over a violating pod warns.
	ns, err := c.CoreV1().Namespaces().Get(ctx, "psa-warn", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["pod-security.kubernetes.io/enforce"] = "strict"
	if _, err := c.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("invalid level: got %v, want 422", err)
	}
	var warnings []string
	deadline := time.Now().Add(5 * time.Second)
	for len(warnings) == 0 && time.Now().Before(deadline) { // the pod must reach the watch cache
		req, _ := http.NewRequest(http.MethodPut, s.URL+"/api/v1/namespaces/psa-warn?dryRun=All", strings.NewReader(
			`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"psa-warn","labels":{"pod-security.kubernetes.io/enforce":"baseline"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("enforce baseline: status %d", resp.StatusCode)
		}
		warnings = resp.Header.Values("Warning")
		time.Sleep(20 * time.Millisecond)
	}
	wantWarnings := []string{
		`299 - "existing pods in namespace \"psa-warn\" violate the new PodSecurity enforce level \"baseline:latest\""`,
		`299 - "root: host namespaces"`,
	}
	if strings.Join(warnings, "\n") != strings.Join(wantWarnings, "\n") {
		t.Errorf("warnings\n%q\nwant\n%q", warnings, wantWarnings)
	}
}

func TestDefaultIngressClassAdmission(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t) // admission runs with access control on
	c := s.ClientWithToken("admin")
	createLabelledNamespace(ctx, t, c, "web", nil)
	class := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "newest-default",
		Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}},
		Spec: networkingv1.IngressClassSpec{Controller: "example.com/ingress"}}
	if _, err := c.NetworkingV1().IngressClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "site"},
		Spec: networkingv1.IngressSpec{DefaultBackend: &networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := c.NetworkingV1().Ingresses("web").Create(ctx, ing, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if n := got.Spec.IngressClassName; n != nil && *n == "newest-default" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingressClassName %v, want newest-default", got.Spec.IngressClassName)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
