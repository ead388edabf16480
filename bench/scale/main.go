// Command scale runs the scale scenario of issue 21: it starts `skiff
// server`, runs simulated nodes in-process (internal/sim), creates plain
// pods from many client-go clients, and reports the create rate and p99,
// the time until every pod is bound (and running on its simulated node),
// and at each checkpoint of pods created the server's RSS and how long a
// LIST of pods takes under that load.
//
//	go run ./bench/scale -nodes 5000 -pods 150000 -clients 64
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
	"github.com/skiff-dev/skiff/internal/sim"
)

func main() {
	bin := flag.String("skiff", "bin/skiff", "path of the skiff binary")
	nodes := flag.Int("nodes", 5000, "simulated nodes")
	pods := flag.Int("pods", 150000, "pods to create")
	clients := flag.Int("clients", 64, "client-go clients creating pods, one goroutine each")
	checkpoints := flag.String("checkpoints", "10000,50000,100000,150000", "pod counts at which to read the server's RSS and time a LIST (the last pod is always one)")
	noControllers := flag.Bool("disable-controllers", false, "run the server without its controller manager")
	podWorkers := flag.Int("sim-pod-workers", 32, "the simulated nodes' concurrent pod status writers")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	cfg := config{bin: *bin, nodes: *nodes, pods: *pods, clients: *clients, noControllers: *noControllers, timeout: *timeout, podWorkers: *podWorkers}
	for _, f := range strings.Split(*checkpoints, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 && n < cfg.pods {
			cfg.checkpoints = append(cfg.checkpoints, n)
		}
	}
	cfg.checkpoints = append(cfg.checkpoints, cfg.pods)
	slices.Sort(cfg.checkpoints)
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

type config struct {
	bin                  string
	nodes, pods, clients int
	checkpoints          []int
	noControllers        bool
	podWorkers           int
	timeout              time.Duration
}

// checkpoint is what the server looked like when `pods` had been created.
type checkpoint struct {
	pods       int
	elapsed    time.Duration // since the first create
	rssMiB     float64
	list       time.Duration // every pod, from the server's watch cache (resourceVersion=0)
	listQuorum time.Duration // every pod, a consistent read
	listPage   time.Duration // the first 500
	err        error
}

func run(cfg config) error {
	extra := []string{"--log-level", "error", "--dashboard-port", "0"}
	if cfg.noControllers {
		extra = append(extra, "--disable-controllers")
	}
	srv, err := benchserver.Start(cfg.bin, extra...)
	if err != nil {
		return err
	}
	defer srv.Close()
	pid := srv.Cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	cs := srv.Clients(cfg.clients + 2)
	probe, watcher, creators := cs[0], cs[1], cs[2:]
	fmt.Printf("server ready in %s, RSS %.0f MiB\n", srv.Ready.Sub(srv.Started).Round(time.Millisecond), rssMiB(pid))
	if _, err := probe.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the default ServiceAccount: %w", err)
	}

	// Simulated nodes, in this process.
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() {
		simDone <- sim.Run(simCtx, sim.Config{
			RESTConfig: srv.Config, Nodes: cfg.nodes, PodWorkers: cfg.podWorkers,
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		})
	}()
	defer func() {
		stopSim()
		<-simDone
	}()
	t0 := time.Now()
	if err := waitNodes(ctx, probe, cfg.nodes); err != nil {
		return err
	}
	fmt.Printf("%d simulated nodes Ready and schedulable in %s, RSS %.0f MiB\n", cfg.nodes, time.Since(t0).Round(time.Millisecond), rssMiB(pid))

	// Follow bindings and starts from before the first create.
	list, err := watcher.CoreV1().Pods("default").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return err
	}
	tr := newTracker(cfg.pods)
	watchDone := make(chan error, 1)
	go func() { watchDone <- tr.follow(ctx, watcher, list.ResourceVersion) }()

	// Create the pods; a monitor takes the checkpoints meanwhile.
	var created atomic.Int64
	lats := make([][]time.Duration, len(creators))
	start := time.Now()
	cps := make(chan checkpoint, len(cfg.checkpoints))
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		for _, n := range cfg.checkpoints {
			for created.Load() < int64(n) {
				select {
				case <-ctx.Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			cps <- measure(ctx, probe, pid, n, time.Since(start))
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for w, c := range creators {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.pods || ctx.Err() != nil {
					return
				}
				t := time.Now()
				_, err := c.CoreV1().Pods("default").Create(ctx, benchPod(i), metav1.CreateOptions{})
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("create pod %d: %w", i, err) })
					cancel()
					return
				}
				lats[w] = append(lats[w], time.Since(t))
				created.Add(1)
			}
		})
	}
	wg.Wait()
	createTime := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	fmt.Printf("created %d pods from %d clients in %s: %.0f pods/s, latency p50 %s p99 %s max %s\n",
		len(all), len(creators), createTime.Round(time.Millisecond), float64(len(all))/createTime.Seconds(),
		pct(all, 0.50), pct(all, 0.99), all[len(all)-1].Round(time.Millisecond))

	select {
	case err := <-watchDone:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		b, r := tr.counts()
		return fmt.Errorf("timed out with %d of %d pods bound, %d running", b, cfg.pods, r)
	}
	fmt.Printf("all bound %s after the first create, all running %s after it\n",
		tr.allBound.Sub(start).Round(time.Millisecond), tr.allRunning.Sub(start).Round(time.Millisecond))
	<-monDone
	close(cps)
	fmt.Printf("\n%8s %10s %9s %14s %14s %12s\n", "pods", "elapsed", "RSS MiB", "LIST rv=0", "LIST quorum", "LIST 500")
	for c := range cps {
		if c.err != nil {
			fmt.Printf("%8d %10s %9.0f  list failed: %v\n", c.pods, c.elapsed.Round(time.Millisecond), c.rssMiB, c.err)
			continue
		}
		fmt.Printf("%8d %10s %9.0f %14s %14s %12s\n", c.pods, c.elapsed.Round(time.Millisecond), c.rssMiB,
			c.list.Round(time.Millisecond), c.listQuorum.Round(time.Millisecond), c.listPage.Round(time.Millisecond))
	}
	// Settled: every pod bound and running.
	c := measure(ctx, probe, pid, cfg.pods, time.Since(start))
	if c.err == nil {
		fmt.Printf("%8s %10s %9.0f %14s %14s %12s\n", "settled", c.elapsed.Round(time.Millisecond), c.rssMiB,
			c.list.Round(time.Millisecond), c.listQuorum.Round(time.Millisecond), c.listPage.Round(time.Millisecond))
	}
	return nil
}

// waitNodes waits until n sim nodes are Ready and carry no NoSchedule or
// NoExecute taint (admission taints new nodes not-ready until the node
// lifecycle controller sees them Ready).
func waitNodes(ctx context.Context, c kubernetes.Interface, n int) error {
	for {
		list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "type=skiff-sim"})
		ready := 0
		if err == nil {
			for _, node := range list.Items {
				if isReady(&node) && len(node.Spec.Taints) == 0 {
					ready++
				}
			}
			if ready >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d nodes ready and untainted: %w", ready, n, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func measure(ctx context.Context, c kubernetes.Interface, pid, pods int, elapsed time.Duration) checkpoint {
	cp := checkpoint{pods: pods, elapsed: elapsed, rssMiB: rssMiB(pid)}
	t := time.Now()
	if _, cp.err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: "0"}); cp.err != nil {
		return cp
	}
	cp.list = time.Since(t)
	t = time.Now()
	if _, cp.err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); cp.err != nil {
		return cp
	}
	cp.listQuorum = time.Since(t)
	t = time.Now()
	if _, cp.err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 500}); cp.err != nil {
		return cp
	}
	cp.listPage = time.Since(t)
	return cp
}

func benchPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%06d", i), Labels: map[string]string{"app": "scale"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox:1.35",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi"),
			}},
		}}},
	}
}

// tracker counts pods bound and running from a watch.
type tracker struct {
	want                 int
	mu                   sync.Mutex
	bound, running       map[string]bool
	allBound, allRunning time.Time
}

func newTracker(want int) *tracker {
	return &tracker{want: want, bound: make(map[string]bool, want), running: make(map[string]bool, want)}
}

func (t *tracker) counts() (bound, running int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bound), len(t.running)
}

// follow watches pods from rv until every wanted pod is bound and running,
// watching again from the last version seen when the server ends a watch.
func (t *tracker) follow(ctx context.Context, c kubernetes.Interface, rv string) error {
	for {
		w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			return fmt.Errorf("watch pods: %w", err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				w.Stop()
				return fmt.Errorf("watch pods: %v", apierrors.FromObject(ev.Object))
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = p.ResourceVersion
			if ev.Type == watch.Bookmark || ev.Type == watch.Deleted {
				continue
			}
			if t.observe(p) {
				w.Stop()
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (t *tracker) observe(p *corev1.Pod) (done bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if p.Spec.NodeName != "" && !t.bound[p.Name] {
		t.bound[p.Name] = true
		if len(t.bound) == t.want {
			t.allBound = now
		}
	}
	if p.Status.Phase == corev1.PodRunning && !t.running[p.Name] {
		t.running[p.Name] = true
		if len(t.running) == t.want {
			t.allRunning = now
		}
	}
	return len(t.bound) == t.want && len(t.running) == t.want
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))].Round(time.Millisecond)
}

// rssMiB reads the process's resident set size from /proc.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
