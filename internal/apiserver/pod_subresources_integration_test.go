package apiserver_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// podSubresourceServer runs a server with admission on, a namespace and
// its default ServiceAccount (which the ServiceAccount plugin requires).
func podSubresourceServer(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	c := startRBACServer(t).ClientWithToken("admin")
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c
}

func resizablePod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "x"}}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")},
		}}},
	}}
}

func TestRuntimeClassAdmissionIntegration(t *testing.T) {
	ctx := context.Background()
	const ns = "rc"
	c := podSubresourceServer(t, ns)
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "sandboxed"}, Handler: "runc",
		Overhead:   &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
		Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{"sandbox": "yes"}}}
	if _, err := c.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := rc.DeepCopy()
	bad.Name, bad.Handler = "bad", "Not_A_Label"
	if _, err := c.NodeV1().RuntimeClasses().Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("invalid handler: err = %v, want 422", err)
	}
	got, err := c.NodeV1().RuntimeClasses().Get(ctx, "sandboxed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Handler = "kata"
	if _, err := c.NodeV1().RuntimeClasses().Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("handler change: err = %v, want 422 (immutable)", err)
	}

	pod := resizablePod("with-class")
	pod.Spec.RuntimeClassName = ptr.To("sandboxed")
	created, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := created.Spec.Overhead[corev1.ResourceCPU]; q.String() != "250m" || created.Spec.NodeSelector["sandbox"] != "yes" {
		t.Errorf("pod overhead %v, node selector %v: the RuntimeClass was not applied", created.Spec.Overhead, created.Spec.NodeSelector)
	}

	missing := resizablePod("missing-class")
	missing.Spec.RuntimeClassName = ptr.To("nope")
	_, err = c.CoreV1().Pods(ns).Create(ctx, missing, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `pod rejected: RuntimeClass "nope" not found`) {
		t.Errorf("unknown class: err = %v, want 403 RuntimeClass not found", err)
	}
	overhead := resizablePod("own-overhead")
	overhead.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, overhead, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("overhead without a class: err = %v, want 403", err)
	}
}

func TestEphemeralContainersSubresource(t *testing.T) {
	ctx := context.Background()
	const ns = "eph"
	c := podSubresourceServer(t, ns)
	pods := c.CoreV1().Pods(ns)
	if _, err := pods.Create(ctx, resizablePod("target"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The main resource refuses ephemeral containers.
	cur, err := pods.Get(ctx, "target", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withDebug := cur.DeepCopy()
	withDebug.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "busybox", Stdin: true, TTY: true},
		TargetContainerName:      "app",
	}}
	if _, err := pods.Update(ctx, withDebug, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("ephemeral container through the main resource: err = %v, want 422", err)
	}
	// The subresource takes them, and nothing else.
	withDebug.Labels["app"] = "changed"
	out, err := pods.UpdateEphemeralContainers(ctx, "target", withDebug, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Spec.EphemeralContainers) != 1 || out.Labels["app"] != "x" {
		t.Errorf("after update: ephemeral %v, labels %v", out.Spec.EphemeralContainers, out.Labels)
	}
	if out.Spec.EphemeralContainers[0].TerminationMessagePolicy != corev1.TerminationMessageReadFile {
		t.Errorf("ephemeral container not defaulted: %+v", out.Spec.EphemeralContainers[0])
	}
	if out.Generation != cur.Generation+1 {
		t.Errorf("generation %d, want %d", out.Generation, cur.Generation+1)
	}
	// GET on the subresource returns the pod.
	var viaSub corev1.Pod
	if err := c.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").Name("target").SubResource("ephemeralcontainers").Do(ctx).Into(&viaSub); err != nil {
		t.Fatal(err)
	}
	if len(viaSub.Spec.EphemeralContainers) != 1 {
		t.Errorf("GET ephemeralcontainers: %+v", viaSub.Spec.EphemeralContainers)
	}
	// A strategic merge patch adds another (what kubectl debug sends).
	patch := `{"spec":{"ephemeralContainers":[{"name":"second","image":"busybox"}]}}`
	out, err = pods.Patch(ctx, "target", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "ephemeralcontainers")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Spec.EphemeralContainers) != 2 {
		t.Errorf("after patch: %d ephemeral containers, want 2", len(out.Spec.EphemeralContainers))
	}
	// Removal and invalid additions are refused.
	removed := out.DeepCopy()
	removed.Spec.EphemeralContainers = removed.Spec.EphemeralContainers[:1]
	if _, err := pods.UpdateEphemeralContainers(ctx, "target", removed, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("removal: err = %v, want 422", err)
	}
	badTarget := out.DeepCopy()
	badTarget.Spec.EphemeralContainers = append(badTarget.Spec.EphemeralContainers, corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "third", Image: "busybox"}, TargetContainerName: "ghost"})
	_, err = pods.UpdateEphemeralContainers(ctx, "target", badTarget, metav1.UpdateOptions{})
	if se, ok := err.(*apierrors.StatusError); !ok || se.ErrStatus.Details == nil || len(se.ErrStatus.Details.Causes) == 0 ||
		se.ErrStatus.Details.Causes[0].Field != "spec.ephemeralContainers[2].targetContainerName" {
		t.Errorf("unknown target: err = %v, want 422 on spec.ephemeralContainers[2].targetContainerName", err)
	}
}

func TestResizeSubresource(t *testing.T) {
	ctx := context.Background()
	const ns = "resize"
	c := podSubresourceServer(t, ns)
	pods := c.CoreV1().Pods(ns)
	if _, err := pods.Create(ctx, resizablePod("p"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The main resource refuses resource changes.
	cur, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bigger := cur.DeepCopy()
	bigger.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("400m")
	if _, err := pods.Update(ctx, bigger, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("resize through the main resource: err = %v, want 422", err)
	}
	// The subresource applies them and drops everything else.
	bigger.Spec.Containers[0].Image = "nginx"
	out, err := pods.UpdateResize(ctx, "p", bigger, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := out.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]; q.String() != "400m" || out.Spec.Containers[0].Image != "busybox" {
		t.Errorf("after resize: limit %s, image %s", q.String(), out.Spec.Containers[0].Image)
	}
	patch := `{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"300m"}}}]}}`
	out, err = pods.Patch(ctx, "p", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize")
	if err != nil {
		t.Fatal(err)
	}
	if q := out.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; q.String() != "300m" {
		t.Errorf("after patch: request %s, want 300m", q.String())
	}
	// Changing the QoS class, or resources other than cpu and memory, is refused.
	for name, p := range map[string]string{
		"qos":     `{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"400m","memory":"64Mi"},"limits":{"memory":"64Mi"}}}]}}`,
		"storage": `{"spec":{"containers":[{"name":"app","resources":{"requests":{"ephemeral-storage":"1Gi"}}}]}}`,
	} {
		if _, err := pods.Patch(ctx, "p", types.StrategicMergePatchType, []byte(p), metav1.PatchOptions{}, "resize"); !apierrors.IsInvalid(err) {
			t.Errorf("%s: err = %v, want 422", name, err)
		}
	}
}
