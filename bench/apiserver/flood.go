package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

// floodUser is the ordinary user whose many clients flood the server;
// the component is the scheduler's identity (FlowSchema kube-scheduler).
const (
	floodUser     = "bench-flood-user"
	componentUser = "system:kube-scheduler"
)

// runFlood measures whether a crowd of ordinary clients can starve a
// component: the component's p99 alone, then while `clients` clients of one
// user list ConfigMaps as fast as the server lets them (honouring
// Retry-After, as client-go does). Both reach the server through the admin
// credentials with impersonation, which API Priority and Fairness sees as
// the impersonated users.
func runFlood(bin string, clients int, d time.Duration, inflight int) error {
	srv, err := benchserver.Start(bin, append([]string{"--log-level", "warn", "--disable-scheduler", "--disable-controllers",
		"--max-requests-inflight", strconv.Itoa(inflight), "--max-mutating-requests-inflight", strconv.Itoa(inflight / 2)}, serverFlags...)...)
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx := context.Background()
	admin := srv.Clients(1)[0]
	if err := createNamespace(ctx, admin, "flood"); err != nil {
		return err
	}
	// Lists of 200 ConfigMaps of 1 KB: requests that hold their seat a while.
	for i := range 200 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%03d", i)}, Data: map[string]string{"k": strings.Repeat("v", 1024)}}
		if _, err := admin.CoreV1().ConfigMaps("flood").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	// A role of its own: "view" is aggregated by a controller this server
	// does not run.
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-flood"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-flood"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "bench-flood"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: floodUser}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	component, err := impersonating(srv.Config, componentUser)
	if err != nil {
		return err
	}
	componentURL := srv.Config.Host + "/api/v1/nodes"
	floodURL := srv.Config.Host + "/api/v1/namespaces/flood/configmaps"

	fmt.Printf("skiff API server under a flood of %d clients of one user (%s each phase, --max-requests-inflight %d)\n", clients, d, inflight)
	alone := measureComponent(component, componentURL, d)
	report("component p99 alone (kube-scheduler, GET nodes)", pct(alone), "")

	var served, rejected, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// A hundred clients share a connection (HTTP/2 streams), as separate
	// client processes would share the server's cores.
	var transports []*http.Client
	for i := 0; i < clients; i += 100 {
		c, err := impersonating(srv.Config, floodUser)
		if err != nil {
			return err
		}
		transports = append(transports, c)
	}
	for i := range clients {
		wg.Add(1)
		go func(c *http.Client) {
			defer wg.Done()
			flood(c, floodURL, stop, &served, &rejected, &failed)
		}(transports[i/100])
	}
	time.Sleep(time.Second) // let the flood build up
	start := time.Now()
	servedBefore, rejectedBefore := served.Load(), rejected.Load()
	peaks := make(chan [2]float64, 1)
	sampleStop := make(chan struct{})
	go func() { peaks <- samplePeaks(admin.CoreV1().RESTClient(), sampleStop) }()
	under := measureComponent(component, componentURL, d)
	close(sampleStop)
	peak := <-peaks
	elapsed := time.Since(start)
	servedDuring, rejectedDuring := served.Load()-servedBefore, rejected.Load()-rejectedBefore
	close(stop)
	wg.Wait()
	report("component p99 under the flood", pct(under), "target < 1 s")
	report("component requests failed under the flood", strconv.Itoa(countFailures(under)), "0")
	report("flood served (excess throughput)", fmt.Sprintf("%.0f /s", float64(servedDuring)/elapsed.Seconds()), "")
	report("flood rejected with 429", fmt.Sprintf("%d (%.0f /s)", rejectedDuring, float64(rejectedDuring)/elapsed.Seconds()), "")
	report("flood errors (transport or neither 200 nor 429)", strconv.FormatInt(failed.Load(), 10), "")
	report("global-default peak executing / queued", fmt.Sprintf("%.0f / %.0f", peak[0], peak[1]), "")
	return nil
}

// impersonating returns an HTTP client with the admin's credentials acting
// as user (plus system:authenticated, which impersonation adds).
func impersonating(cfg *rest.Config, user string) (*http.Client, error) {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rt } // a transport of its own
	rt, err := rest.TransportFor(c)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt, Timeout: 70 * time.Second}, nil
}

// flood lists ConfigMaps until stop, waiting Retry-After on a 429.
func flood(c *http.Client, url string, stop <-chan struct{}, served, rejected, failed *atomic.Int64) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		resp, err := c.Get(url)
		if err != nil {
			failed.Add(1)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			if resp.StatusCode == http.StatusOK {
				served.Add(1)
			} else {
				failed.Add(1)
			}
			continue
		}
		rejected.Add(1)
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(max(wait, 1)) * time.Second):
		}
	}
}

// failedMark flags a failed component request in the latency list.
const failedMark = time.Hour

// measureComponent issues the component's requests one after another for
// d (10 ms apart, like a controller's steady work) and returns their
// latencies; failures count as failedMark.
func measureComponent(c *http.Client, url string, d time.Duration) []time.Duration {
	var lat []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t0 := time.Now()
		resp, err := c.Get(url)
		took := time.Since(t0)
		if err != nil || resp.StatusCode != http.StatusOK {
			took = failedMark
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		lat = append(lat, took)
		time.Sleep(10 * time.Millisecond)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

func countFailures(lat []time.Duration) int {
	n := 0
	for _, l := range lat {
		if l == failedMark {
			n++
		}
	}
	return n
}

// samplePeaks polls the server's metrics until stop and returns the peak
// executing and queued requests of the global-default flow schema.
func samplePeaks(c rest.Interface, stop <-chan struct{}) [2]float64 {
	var peak [2]float64
	for {
		select {
		case <-stop:
			return peak
		case <-time.After(200 * time.Millisecond):
		}
		body, err := c.Get().AbsPath("/metrics").DoRaw(context.Background())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.Contains(line, `flow_schema="global-default"`) {
				continue
			}
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			switch {
			case strings.HasPrefix(line, "apiserver_flowcontrol_current_executing_requests{"):
				peak[0] = max(peak[0], v)
			case strings.HasPrefix(line, "apiserver_flowcontrol_current_inqueue_requests{"):
				peak[1] = max(peak[1], v)
			}
		}
	}
}
