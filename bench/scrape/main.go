// Command scrape measures the CPU a Prometheus scrape of every metrics
// endpoint of a 100-node cluster costs the cluster (the scraped side; the
// scraper's own parsing, and TLS on kept-alive connections, are not
// counted).
//
// Per node: one real kubelet over the fake runtime runs -pods-per-node
// pods of two containers; its /metrics, /metrics/cadvisor and
// /metrics/resource, and an agent /metrics with the Go and process
// collectors, are scraped in-process and their cost is multiplied by the
// node count. It is measured before the control plane starts, so the
// collections the scrapes cause mark only a node-sized heap. Then the
// control plane: an API server on embedded etcd that -nodes simulated
// nodes (internal/sim) register with, heartbeat to and run pods on, so
// its request, watch and storage series are a 100-node cluster's; the
// simulation stops before its /metrics is measured. CPU is getrusage's
// user+system time of this process around the handlers, minus the idle
// rate measured just before.
//
//	go run ./bench/scrape [-nodes 100] [-pods-per-node 30] [-rounds 30] [-cpuprofile f]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/kubelet"
	"github.com/skiff-dev/skiff/internal/kubelet/fakeruntime"
	"github.com/skiff-dev/skiff/internal/metricshttp"
	"github.com/skiff-dev/skiff/internal/procmetrics"
	"github.com/skiff-dev/skiff/internal/sim"
	"github.com/skiff-dev/skiff/internal/storage"
)

// Prometheus' own default scrape_interval is 1m; kube-prometheus (and the
// kube-prometheus-stack chart) scrape the kubelet and API server every
// 30 s; 15 s is the interval of Prometheus' example configuration and
// the strictest common setting, so the budget is checked against it.
var intervals = []time.Duration{15 * time.Second, 30 * time.Second}

func main() {
	nodes := flag.Int("nodes", 100, "simulated nodes")
	perNode := flag.Int("pods-per-node", 30, "pods per node (two containers each)")
	apiPods := flag.Int("api-pods-per-node", 5, "pods per simulated node in the warm-up (the API server's series do not grow with it)")
	rounds := flag.Int("rounds", 30, "scrapes of each endpoint to average")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the scrapes to this file")
	flag.Parse()
	if err := run(*nodes, *perNode, *apiPods, *rounds, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "scrape:", err)
		os.Exit(1)
	}
}

func run(nodes, perNode, apiPods, rounds int, profile string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "skiff-scrape")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	// The node's endpoints first, while the process holds only a node's
	// heap: with the API server's caches in it, every collection the
	// scrapes trigger would mark that heap too, which a node never pays.
	k, err := startKubelet(ctx, filepath.Join(dir, "kubelet"), perNode, quiet)
	if err != nil {
		return err
	}
	agent := prometheus.NewRegistry()
	agent.MustRegister(collectors.NewGoCollector(), procmetrics.New())
	var results []result
	node := []target{
		{"kubelet /metrics", nodes, k, "/metrics"},
		{"kubelet /metrics/cadvisor", nodes, k, "/metrics/cadvisor"},
		{"kubelet /metrics/resource", nodes, k, "/metrics/resource"},
		{"agent /metrics (Go, process)", nodes, metricshttp.Handler(agent), "/metrics"},
	}
	if results, err = measureAll(results, node, rounds); err != nil {
		return err
	}

	api, cfg, stopAPI, err := startAPIServer(ctx, filepath.Join(dir, "etcd"))
	if err != nil {
		return err
	}
	defer stopAPI()
	if err := warmUp(ctx, cfg, nodes, apiPods, quiet); err != nil {
		return err
	}
	if results, err = measureAll(results, []target{{"API server /metrics", 1, api, "/metrics"}}, rounds); err != nil {
		return err
	}

	fmt.Printf("\nkubelet: %d pods of 2 containers; CPU is getrusage user+system minus the idle rate\n", perNode)
	fmt.Printf("%-30s %8s %10s %12s %6s %12s %8s\n", "endpoint", "series", "bytes", "CPU/scrape", "x", "CPU/round", "idle")
	var total time.Duration
	for _, r := range results {
		round := r.perScrape * time.Duration(r.count)
		total += round
		fmt.Printf("%-30s %8d %10d %12s %6d %12s %7.2f%%\n", r.name, r.series, r.size,
			r.perScrape.Round(time.Microsecond), r.count, round.Round(time.Microsecond), 100*r.idle)
	}
	fmt.Printf("\nendpoints per round: %d (4 per node, 1 API server)\n", 4*nodes+1)
	fmt.Printf("CPU per scrape round: %s\n", total.Round(time.Microsecond))
	for _, iv := range intervals {
		fmt.Printf("at a %s scrape interval: %.3f%% of one core\n", iv, 100*total.Seconds()/iv.Seconds())
	}
	fmt.Println("(the API server's /metrics here lacks the scheduler's and controllers' registries, which `skiff server` adds to it)")
	return nil
}

// result is one endpoint's measurement.
type result struct {
	target
	series, size int
	perScrape    time.Duration
	idle         float64 // background CPU subtracted, in cores
}

func measureAll(results []result, targets []target, rounds int) ([]result, error) {
	idle := idleRate(2 * time.Second)
	for _, t := range targets {
		series, size, err := t.probe()
		if err != nil {
			return nil, err
		}
		results = append(results, result{target: t, series: series, size: size, perScrape: t.measure(rounds, idle), idle: idle})
	}
	return results, nil
}

// target is one endpoint scraped count times per round.
type target struct {
	name    string
	count   int
	handler http.Handler
	path    string
}

// scrape asks as Prometheus does: text exposition, gzip.
func (t target) scrape(w http.ResponseWriter) {
	req := httptest.NewRequest(http.MethodGet, t.path, nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1")
	req.Header.Set("Accept-Encoding", "gzip")
	t.handler.ServeHTTP(w, req)
}

// probe scrapes once without gzip and counts series and bytes.
func (t target) probe() (series, size int, err error) {
	rec := httptest.NewRecorder()
	t.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, t.path, nil))
	if rec.Code != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %d %s", t.name, rec.Code, rec.Body)
	}
	for line := range bytes.Lines(rec.Body.Bytes()) {
		if len(line) > 1 && line[0] != '#' {
			series++
		}
	}
	return series, rec.Body.Len(), nil
}

// measure is the CPU of one scrape, averaged over rounds.
func (t target) measure(rounds int, idle float64) time.Duration {
	w := &discard{header: http.Header{}}
	t.scrape(w) // warm caches and pools
	start, cpu0 := time.Now(), cpuTime()
	for range rounds {
		w.header = http.Header{}
		t.scrape(w)
	}
	used := cpuTime() - cpu0 - time.Duration(idle*float64(time.Since(start)))
	return max(used, 0) / time.Duration(rounds)
}

// discard is a ResponseWriter that drops the body, as a network would.
type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// cpuTime is this process's user and system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleRate is the process's background CPU, in cores, while nothing scrapes.
func idleRate(d time.Duration) float64 {
	start, cpu0 := time.Now(), cpuTime()
	time.Sleep(d)
	return (cpuTime() - cpu0).Seconds() / time.Since(start).Seconds()
}

// startAPIServer runs an API server on embedded etcd whose /metrics is the
// process's registry and its own, as `skiff server` serves them.
func startAPIServer(ctx context.Context, dir string) (http.Handler, *rest.Config, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	e, err := storage.StartEmbedded(ctx, dir)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	_, cidr, _ := net.ParseCIDR("10.96.0.0/16")
	var metrics prometheus.Gatherers
	s, err := apiserver.New(apiserver.Config{
		Store: storage.NewStore(e.Client), Resources: apis.All(), GitVersion: "v1.37.2+skiff",
		ServiceCIDR: cidr, PublicAddress: net.ParseIP("127.0.0.1"), PublicPort: 6443,
		ExtraHandlers: map[string]http.Handler{"/metrics": metricshttp.Handler(&metrics)},
	})
	if err != nil {
		cancel()
		e.Close()
		return nil, nil, nil, err
	}
	metrics = prometheus.Gatherers{prometheus.DefaultGatherer, s.Metrics()}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	hs := httptest.NewServer(s)
	stop := sync.OnceFunc(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-done
		e.Close()
	})
	if err := s.WaitReady(ctx); err != nil {
		stop()
		return nil, nil, nil, err
	}
	if err := s.Bootstrap(ctx); err != nil {
		stop()
		return nil, nil, nil, err
	}
	s.MarkReady()
	return s, &rest.Config{Host: hs.URL, QPS: -1}, stop, nil
}

// warmUp runs the simulated nodes with their pods until every pod is
// Running, then stops them: the API server keeps the series that traffic
// created, and the measurement runs without the simulation's own CPU.
func warmUp(ctx context.Context, cfg *rest.Config, nodes, perNode int, log *slog.Logger) error {
	start := time.Now()
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() {
		simDone <- sim.Run(simCtx, sim.Config{RESTConfig: cfg, Nodes: nodes, Logger: log})
	}()
	defer func() { stopSim(); <-simDone }()
	client := kubernetes.NewForConfigOrDie(cfg)
	want := nodes * perNode
	jobs := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				node := fmt.Sprintf("sim-%d", i%nodes)
				if _, err := client.CoreV1().Pods("default").Create(ctx, benchPod(fmt.Sprintf("p-%d", i), node), metav1.CreateOptions{}); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	for i := range want {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("create pods: %w", err)
	default:
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running", ResourceVersion: "0"})
		if err != nil {
			return err
		}
		if len(list.Items) >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d pods Running after 40 s", len(list.Items), want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Printf("warm-up: %d simulated nodes ran %d pods to Running in %s\n", nodes, want, time.Since(start).Round(time.Millisecond))
	return nil
}

func benchPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{
			{Name: "app", Image: "busybox", Command: []string{"sleep", "inf"}},
			{Name: "sidecar", Image: "busybox", Command: []string{"sleep", "inf"}},
		}},
	}
}

// startKubelet runs a real kubelet over the fake runtime and a fake API
// with perNode running pods, then stops its loops (leaving the pods in
// the runtime) so that only scrapes use CPU.
func startKubelet(ctx context.Context, dir string, perNode int, log *slog.Logger) (http.Handler, error) {
	client := fake.NewClientset()
	rt := fakeruntime.New()
	rt.AddImage("busybox")
	k, err := kubelet.NewWithRuntime(kubelet.Config{
		Client: client, NodeName: "bench-node", RuntimeEndpoint: "fake", DataDir: filepath.Join(dir, "data"),
		LogDir: filepath.Join(dir, "logs"), CNIConfDir: filepath.Join(dir, "cni"), NodeIP: net.ParseIP("192.0.2.7"),
		KeepContainersOnExit: true, PLEGPeriod: 100 * time.Millisecond,
		Registerer: prometheus.NewRegistry(), Logger: log,
	}, rt, rt)
	if err != nil {
		return nil, err
	}
	kctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Run(kctx) }()
	stopOnce := sync.OnceFunc(func() { stop(); <-done })
	for i := range perNode {
		if _, err := client.CoreV1().Pods("default").Create(ctx, benchPod(fmt.Sprintf("k-%d", i), "bench-node"), metav1.CreateOptions{}); err != nil {
			stopOnce()
			return nil, err
		}
	}
	h := k.MetricsHandler()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if running, _ := runningPods(h); running >= perNode {
			break
		}
		if time.Now().After(deadline) {
			stopOnce()
			return nil, fmt.Errorf("kubelet: pods not running after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopOnce()
	return h, nil
}

// runningPods reads kubelet_running_pods from the kubelet's /metrics.
func runningPods(h http.Handler) (int, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(body) {
		var n int
		if _, err := fmt.Sscanf(string(line), "kubelet_running_pods %d", &n); err == nil {
			return n, nil
		}
	}
	return 0, nil
}
