// Command apiserver benchmarks `skiff server` with embedded etcd: start-up
// time, idle memory, create/get/list latency with 1 and 64 clients, create
// throughput, watch fan-out to 1,000 watchers and LIST of 10,000 pods. It
// drives the server over HTTPS with client-go, as upstream's figures were
// measured, and prints them beside upstream's.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

func main() {
	bin := flag.String("skiff", "bin/skiff", "path of the skiff binary")
	pods := flag.Int("pods", 10000, "pods created by the 64-client phase (and listed afterwards)")
	watchers := flag.Int("watchers", 1000, "concurrent watchers for the fan-out measurement")
	full := flag.Bool("full", false, "also run the scheduler and controllers in the server (default: API server and etcd alone, as the targets are stated)")
	clients := flag.Int("clients", 0, "instead, flood the server with this many clients of one ordinary user while a component measures its p99 (flood.go)")
	floodFor := flag.Duration("flood-duration", 10*time.Second, "length of each phase of the -clients run")
	inflight := flag.Int("max-requests-inflight", 400, "the server's --max-requests-inflight in the -clients run (mutating: half of it; 400 and 200 are upstream's defaults); lower it to see the excess rejected on a machine whose cores saturate first")
	apf := flag.Bool("priority-and-fairness", true, "run the server with API Priority and Fairness (false: measure without it)")
	watchfanout := flag.Bool("watchfanout", false, "instead, measure node-filtered pod watch fan-out (watchfanout.go)")
	fanoutNodes := flag.Int("fanout-nodes", 5000, "pod watches, one per node, in the -watchfanout run")
	fanoutWrites := flag.Int("fanout-writes", 2000, "pod creates and updates through the API in the -watchfanout run")
	fanoutDirect := flag.Int("fanout-etcd-writes", 20000, "pod creates written straight to etcd in the -watchfanout run")
	baseline := flag.String("baseline", "", "in the -watchfanout run, also measure this skiff binary and print both side by side")
	flag.Func("server-flag", "an extra flag for the server, e.g. --pprof-address=127.0.0.1:6060 to profile it (repeatable)", func(v string) error {
		serverFlags = append(serverFlags, v)
		return nil
	})
	flag.Parse()
	if !*apf {
		serverFlags = append(serverFlags, "--enable-priority-and-fairness=false")
	}
	bench := func() error { return run(*bin, *pods, *watchers, *full) }
	if *clients > 0 {
		bench = func() error { return runFlood(*bin, *clients, *floodFor, *inflight) }
	}
	if *watchfanout {
		bench = func() error { return runWatchFanout(*bin, *baseline, *fanoutNodes, *fanoutWrites, *fanoutDirect) }
	}
	if err := bench(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// serverFlags are added to the server's command line (from -priority-and-fairness).
var serverFlags []string

type result struct {
	name, value, upstream string
}

var results []result

func report(name, value, upstream string) {
	results = append(results, result{name, value, upstream})
	fmt.Printf("  %-48s %-28s %s\n", name, value, upstream)
}

func run(bin string, nPods, nWatchers int, full bool) error {
	mode := "API server + embedded etcd"
	extra := append([]string{"--log-level", "warn"}, serverFlags...)
	if full {
		mode = "API server + etcd + scheduler + controllers"
	} else {
		extra = append(extra, "--disable-scheduler", "--disable-controllers")
	}
	srv, err := benchserver.Start(bin, extra...)
	if err != nil {
		return err
	}
	defer srv.Close()
	cfg := srv.Config
	fmt.Printf("skiff server benchmark: %s (%s)\n", mode, bin)
	fmt.Printf("  %-48s %-28s %s\n", "measure", "skiff", "upstream v1.37 (same machine, from design.md)")
	report("start to ready (embedded etcd)", srv.Ready.Sub(srv.Started).Round(time.Millisecond).String(), "~1 s after etcd is up")
	time.Sleep(2 * time.Second)
	report("idle RSS (API server + etcd)", fmt.Sprintf("%.1f MiB", rssMiB(srv.Cmd.Process.Pid)), "~300 MiB")

	ctx := context.Background()
	cs := srv.Clients(8)
	if err := createNamespace(ctx, cs[0], "bench"); err != nil {
		return err
	}

	// Creates, 1 client then 64.
	var seq atomic.Int64
	create := func(c kubernetes.Interface) error {
		n := seq.Add(1)
		_, err := c.CoreV1().Pods("bench").Create(ctx, benchPod(fmt.Sprintf("p-%06d", n)), metav1.CreateOptions{})
		return err
	}
	lat, _, err := load(cs, 1, 300, create)
	if err != nil {
		return err
	}
	report("create latency, 1 client (p50 / p99)", pct(lat), "")
	lat, elapsed, err := load(cs, 64, nPods-300, create)
	if err != nil {
		return err
	}
	report("create latency, 64 clients (p50 / p99)", pct(lat), "p50 ~43 ms / p99 ~110 ms")
	report("creates per second, 64 clients", fmt.Sprintf("%.0f /s", float64(len(lat))/elapsed.Seconds()), "~1,350 /s")

	get := func(c kubernetes.Interface) error {
		_, err := c.CoreV1().Pods("bench").Get(ctx, "p-000001", metav1.GetOptions{})
		return err
	}
	if lat, _, err = load(cs, 1, 500, get); err != nil {
		return err
	}
	report("get latency, 1 client (p50 / p99)", pct(lat), "")
	if lat, _, err = load(cs, 64, 5000, get); err != nil {
		return err
	}
	report("get latency, 64 clients (p50 / p99)", pct(lat), "")

	if err := authorizationCost(ctx, srv, cs[0]); err != nil {
		return err
	}

	// A small namespace, listed many times.
	if err := createNamespace(ctx, cs[0], "small"); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if _, err := cs[0].CoreV1().Pods("small").Create(ctx, benchPod(fmt.Sprintf("s-%03d", i)), metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	list := func(c kubernetes.Interface) error {
		_, err := c.CoreV1().Pods("small").List(ctx, metav1.ListOptions{})
		return err
	}
	if lat, _, err = load(cs, 1, 200, list); err != nil {
		return err
	}
	report("list 100 pods, 1 client (p50 / p99)", pct(lat), "")
	if lat, _, err = load(cs, 64, 2000, list); err != nil {
		return err
	}
	report("list 100 pods, 64 clients (p50 / p99)", pct(lat), "")

	// LIST of every pod, from the watch cache.
	for _, mode := range []struct{ name, rv, accept string }{
		{"LIST all pods, consistent (protobuf)", "", ""},
		{"LIST all pods, rv=0 (protobuf)", "0", ""},
		{"LIST all pods, consistent (JSON)", "", "application/json"},
	} {
		c := cs[0]
		if mode.accept != "" {
			jc := rest.CopyConfig(cfg)
			jc.AcceptContentTypes, jc.ContentType = mode.accept, mode.accept
			c = kubernetes.NewForConfigOrDie(jc)
		}
		var lat []time.Duration
		var n int
		for i := 0; i < 10; i++ {
			t0 := time.Now()
			l, err := c.CoreV1().Pods("bench").List(ctx, metav1.ListOptions{ResourceVersion: mode.rv})
			if err != nil {
				return err
			}
			lat = append(lat, time.Since(t0))
			n = len(l.Items)
		}
		report(fmt.Sprintf("%s [%d items]", mode.name, n), pct(lat), "")
	}

	if err := watchFanout(ctx, srv, nWatchers); err != nil {
		return err
	}
	if err := extensionCosts(ctx, cfg, cs, 3000); err != nil {
		return err
	}
	report("RSS after the load", fmt.Sprintf("%.1f MiB", rssMiB(srv.Cmd.Process.Pid)), "~940 MiB after 5k nodes + 10k pods")
	return nil
}

// createNamespace creates a namespace and its default ServiceAccount
// (pods need one; the benchmark may run without the controllers that
// would create it).
func createNamespace(ctx context.Context, c kubernetes.Interface, name string) error {
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := c.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = nil
	}
	return err
}

// authorizationCost compares ConfigMap creates by the admin (system:masters,
// allowed before RBAC is asked) with creates by a ServiceAccount token whose
// RoleBinding allows them (token verification and RBAC on every request).
func authorizationCost(ctx context.Context, srv *benchserver.Server, admin kubernetes.Interface) error {
	const ns, n = "authz", 3000
	if err := createNamespace(ctx, admin, ns); err != nil {
		return err
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "writer"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "configmap-writer"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "configmap-writer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "writer", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "writer", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	tokenCfg := rest.AnonymousClientConfig(srv.Config)
	tokenCfg.BearerToken = tr.Status.Token
	tokenClients := make([]kubernetes.Interface, 8)
	for i := range tokenClients {
		c := rest.CopyConfig(tokenCfg)
		c.QPS, c.Burst = -1, 0
		c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return rt }
		tokenClients[i] = kubernetes.NewForConfigOrDie(c)
	}
	var seq atomic.Int64
	create := func(c kubernetes.Interface) error {
		_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%06d", seq.Add(1))},
			Data:       map[string]string{"k": "v"},
		}, metav1.CreateOptions{})
		return err
	}
	// Alternate the two, twice, and keep each one's better round: the
	// first round of either also warms the server up.
	adminClients := srv.Clients(8)
	var adminRate, saRate float64
	var adminLat, saLat []time.Duration
	for round := 0; round < 2; round++ {
		lat, elapsed, err := load(adminClients, 64, n, create)
		if err != nil {
			return err
		}
		if r := float64(len(lat)) / elapsed.Seconds(); r > adminRate {
			adminRate, adminLat = r, lat
		}
		lat, elapsed, err = load(tokenClients, 64, n, create)
		if err != nil {
			return fmt.Errorf("creates with a ServiceAccount token: %w", err)
		}
		if r := float64(len(lat)) / elapsed.Seconds(); r > saRate {
			saRate, saLat = r, lat
		}
	}
	report("ConfigMap creates/s, 64 clients, admin", fmt.Sprintf("%.0f /s, %s", adminRate, pct(adminLat)), "")
	report("ConfigMap creates/s, 64 clients, SA token+RBAC", fmt.Sprintf("%.0f /s, %s", saRate, pct(saLat)), "")
	report("authorization cost (throughput)", fmt.Sprintf("%.1f %%", 100*(1-saRate/adminRate)), "target < 10 %")
	return nil
}

// watchFanout opens n watches and measures how long one change takes to
// reach all of them.
func watchFanout(ctx context.Context, srv *benchserver.Server, n int) error {
	// HTTP/2 multiplexes streams; spread the watches over connections.
	cs := srv.Clients((n + 199) / 200)
	cms := cs[0].CoreV1().ConfigMaps("bench")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fanout"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	cur, err := cms.Get(ctx, "fanout", metav1.GetOptions{})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	arrivals := make(chan time.Time, n)
	ready := make(chan struct{}, n)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < n; i++ {
		w, err := cs[i%len(cs)].CoreV1().ConfigMaps("bench").Watch(wctx, metav1.ListOptions{
			FieldSelector: "metadata.name=fanout", ResourceVersion: cur.ResourceVersion,
		})
		if err != nil {
			return fmt.Errorf("watch %d: %w", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			ready <- struct{}{}
			for ev := range w.ResultChan() {
				if cm, ok := ev.Object.(*corev1.ConfigMap); ok && cm.Data["x"] == "1" {
					arrivals <- time.Now()
					return
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	time.Sleep(500 * time.Millisecond)
	cur.Data = map[string]string{"x": "1"}
	t0 := time.Now()
	if _, err := cms.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return err
	}
	var lat []time.Duration
	timeout := time.After(30 * time.Second)
	for len(lat) < n {
		select {
		case t := <-arrivals:
			lat = append(lat, t.Sub(t0))
		case <-timeout:
			return fmt.Errorf("only %d of %d watchers saw the change", len(lat), n)
		}
	}
	cancel()
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	report(fmt.Sprintf("watch event to %d watchers (p50 / all)", n), fmt.Sprintf("%s / %s", ms(lat[len(lat)/2]), ms(lat[len(lat)-1])), "")
	return nil
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox:1.35", Command: []string{"sleep", "3600"},
		}}},
	}
}

// load runs total calls of fn spread over workers goroutines and returns
// each call's latency and the wall time.
func load(cs []kubernetes.Interface, workers, total int, fn func(kubernetes.Interface) error) ([]time.Duration, time.Duration, error) {
	var (
		mu    sync.Mutex
		lat   = make([]time.Duration, 0, total)
		next  atomic.Int64
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(c kubernetes.Interface) {
			defer wg.Done()
			local := make([]time.Duration, 0, total/workers+1)
			for next.Add(1) <= int64(total) {
				t0 := time.Now()
				err := fn(c)
				local = append(local, time.Since(t0))
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(cs[w%len(cs)])
	}
	wg.Wait()
	return lat, time.Since(start), first
}

func pct(lat []time.Duration) string {
	if len(lat) == 0 {
		return "-"
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	return fmt.Sprintf("%s / %s", ms(p(0.50)), ms(p(0.99)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
