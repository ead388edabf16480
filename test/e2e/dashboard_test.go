package e2e

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// dashboardBrowser opens headless chromium for a test, or skips it when
// chromium is missing (hack/install-deps.sh installs it).
func dashboardBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (run hack/install-deps.sh): skipping the dashboard browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// The dashboard's certificate is from the cluster's own CA.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	return bctx
}

// pageShows evaluates js in the page until check accepts its result.
func pageShows[T any](t *testing.T, ctx context.Context, timeout time.Duration, what, js string, check func(T) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", what, err)
		}
		if check(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard never showed %s; last: %v", what, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDashboardShowsPodsLive signs in to `skiff up`'s dashboard with a
// ServiceAccount token and watches a new Deployment's real pods appear and
// turn Running without a reload, then reads a pod's logs and the node's usage.
func TestDashboardShowsPodsLive(t *testing.T) {
	ctx := dashboardBrowser(t)
	port := freePort(t)
	c := startNodeCluster(t, "--dashboard-port", strconv.Itoa(port))
	k := c.kubectl()
	k.must("create", "serviceaccount", "dashboard-user")
	k.must("create", "clusterrolebinding", "dashboard-user", "--clusterrole=cluster-admin", "--serviceaccount=default:dashboard-user")
	token := strings.TrimSpace(k.must("create", "token", "dashboard-user"))

	err := chromedp.Do(ctx,
		chromedp.Navigate("https://127.0.0.1:"+strconv.Itoa(port)+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("pods")),
		// A reload would lose this.
		chromedp.Evaluate[chromedp.Void](`window.e2eMarker = 'same document'`),
	)
	if err != nil {
		t.Fatal(err)
	}
	pageShows(t, ctx, 30*time.Second, "the node Ready",
		`(r => r ? r.cells[1].textContent : '')(document.querySelector('#nodes tr[data-key="`+c.node+`"]'))`,
		func(s string) bool { return s == "Ready" })

	k.must("create", "deployment", "web", "--image=busybox", "--replicas=2", "--", "sh", "-c", "echo hello-from-web; sleep 3600")
	const webPods = `Object.fromEntries([...document.querySelectorAll('#pods tbody tr')].filter(tr => tr.dataset.key.startsWith('default/web-')).map(tr => [tr.dataset.key, tr.querySelector('.status').textContent]))`
	pageShows(t, ctx, 30*time.Second, "the Deployment's two pods", webPods, func(m map[string]string) bool { return len(m) == 2 })
	pageShows(t, ctx, 90*time.Second, "both pods Running", webPods, func(m map[string]string) bool {
		return len(m) == 2 && allEqual(m, "Running")
	})
	pageShows(t, ctx, 30*time.Second, "the Deployment ready 2/2",
		`(r => r ? r.cells[3].textContent : '')(document.querySelector('#workloads tr[data-key="Deployment/default/web"]'))`,
		func(s string) bool { return s == "2/2" })
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.e2eMarker || ''`))
	if err != nil {
		t.Fatal(err)
	}
	if marker != "same document" {
		t.Fatal("the page was reloaded; it must update live")
	}

	// A pod's logs, followed through the dashboard.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('#pods tr[data-key^="default/web-"] button').click()`)); err != nil {
		t.Fatal(err)
	}
	pageShows(t, ctx, 30*time.Second, "the pod's log", `document.getElementById('logs').textContent`,
		func(s string) bool { return strings.Contains(s, "hello-from-web") })

	// Usage is sampled every 15 s from metrics.k8s.io.
	pageShows(t, ctx, 90*time.Second, "the node's CPU usage",
		`(r => r ? r.cells[3].textContent : '')(document.querySelector('#nodes tr[data-key="`+c.node+`"]'))`,
		func(s string) bool { return s != "" })
	pageShows(t, ctx, 30*time.Second, "a node CPU chart", `document.querySelectorAll('#chart-node-cpu polyline').length`,
		func(n int) bool { return n >= 1 })
}

func allEqual(m map[string]string, want string) bool {
	for _, v := range m {
		if v != want {
			return false
		}
	}
	return true
}
