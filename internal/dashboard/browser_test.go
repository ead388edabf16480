package dashboard

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/cluster/pki"
)

// chromiumPath finds Debian's chromium, skipping the test without it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium, or hack/install-deps.sh): skipping the browser test")
	return ""
}

// browser opens a headless chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		// The serving certificate comes from a throwaway CA.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	return bctx
}

// serveTLS runs d on a loopback HTTPS port with a certificate from a new CA.
func serveTLS(t *testing.T, d *Dashboard) string {
	t.Helper()
	bundle, err := pki.Ensure(t.TempDir(), pki.Options{Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln, bundle.Serving) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dashboard Serve: %v", err)
		}
	})
	return "https://" + ln.Addr().String() + "/"
}

// waitPage evaluates js in the page until check accepts its result.
func waitPage[T any](t *testing.T, ctx context.Context, what, js string, check func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", what, err)
		}
		if check(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("page never showed %s; last: %v", what, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// podStatusesJS reads the pods table: pod key -> status cell.
const podStatusesJS = `Object.fromEntries([...document.querySelectorAll('#pods tbody tr')].map(tr => [tr.dataset.key, tr.querySelector('.status').textContent]))`

func TestBrowserShowsNewPodsTurnRunning(t *testing.T) {
	ctx := browser(t)
	c := startCluster(t)
	url := serveTLS(t, newDashboard(t, c, false))

	// Sign in as a viewer, and mark the document: a reload would lose it.
	err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), viewerToken),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("pods")),
		chromedp.Evaluate[chromedp.Void](`window.testMarker = 'same document'`),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "all watches live", `document.getElementById('conn').textContent`, func(s string) bool { return s == "● live" })

	api := context.Background()
	// No token controller runs here to create it.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}
	if _, err := c.admin.CoreV1().ServiceAccounts("default").Create(api, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "busybox"}}},
			},
		},
	}
	dep, err = c.admin.AppsV1().Deployments("default").Create(api, dep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No controllers run here: create the Deployment's pods as its
	// ReplicaSet would, then report them running as a kubelet would.
	var pods []*corev1.Pod
	for i := range 2 {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Namespace: "default", Labels: labels},
			Spec:       *dep.Spec.Template.Spec.DeepCopy(),
		}
		p, err := c.admin.CoreV1().Pods("default").Create(api, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	waitPage(t, ctx, "the new pods as Pending", podStatusesJS, func(m map[string]string) bool {
		return m["default/web-0"] == "Pending" && m["default/web-1"] == "Pending"
	})

	now := metav1.Now()
	for _, p := range pods {
		p.Status = corev1.PodStatus{
			Phase: corev1.PodRunning, StartTime: &now, PodIP: "10.42.0.10", HostIP: "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "web", Image: "busybox", ImageID: "sha256:1", ContainerID: "containerd://1", Ready: true, Started: ptr.To(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			}},
		}
		if _, err := c.admin.CoreV1().Pods("default").UpdateStatus(api, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 2}
	if _, err := c.admin.AppsV1().Deployments("default").UpdateStatus(api, dep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	waitPage(t, ctx, "the pods Running", podStatusesJS, func(m map[string]string) bool {
		return m["default/web-0"] == "Running" && m["default/web-1"] == "Running"
	})
	waitPage(t, ctx, "the Deployment ready 2/2",
		`(r => r ? r.cells[3].textContent : '')(document.querySelector('#workloads tr[data-key="Deployment/default/web"]'))`,
		func(s string) bool { return s == "2/2" })
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.testMarker || ''`))
	if err != nil {
		t.Fatal(err)
	}
	if marker != "same document" {
		t.Fatal("the page was reloaded; it must update live")
	}

	// The viewer may not read metrics: the usage section says so.
	waitPage(t, ctx, "the usage refusal", `document.getElementById('note-usage').textContent`,
		func(s string) bool {
			return s == "This token may not list pods in metrics.k8s.io, so usage is not shown."
		})
}
