// Command scale runs the scale scenario of issue 21: it starts `skiff
// server`, runs simulated nodes in-process (internal/sim), creates plain
// pods from many client-go clients, and reports the create rate and p99,
// the time until every pod is bound (and running on its simulated node),
// at each checkpoint of pods created the control plane's RSS, the API
// server's heap in use, how long a LIST of pods takes under that load and
// how long a watch takes to deliver a new pod, and finally how long the
// server takes to restart with every pod stored, checking that no
// acknowledged pod is lost.
//
//	go run ./bench/scale -nodes 5000 -pods 150000 -clients 64
//
// With -kubeconfig and -pids it measures a control plane started outside
// it instead, e.g. upstream's (make bench-scale-upstream), summing the RSS
// of the given processes.
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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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
	restart := flag.Bool("restart", true, "restart the skiff server at the end and time it until ready")
	kubeconfig := flag.String("kubeconfig", "", "measure the control plane of this kubeconfig instead of starting skiff server")
	serverFlags := flag.String("server-flags", "", "extra flags for skiff server, space-separated (e.g. --pprof-address 127.0.0.1:6060)")
	pids := flag.String("pids", "", "with -kubeconfig: the control plane's process ids, comma-separated, whose RSS is summed")
	flag.Parse()
	cfg := config{bin: *bin, nodes: *nodes, pods: *pods, clients: *clients, noControllers: *noControllers,
		timeout: *timeout, podWorkers: *podWorkers, restart: *restart, kubeconfig: *kubeconfig,
		serverFlags: strings.Fields(*serverFlags)}
	for _, f := range strings.Split(*pids, ",") {
		if pid, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && pid > 0 {
			cfg.pids = append(cfg.pids, pid)
		}
	}
	if cfg.kubeconfig != "" && len(cfg.pids) == 0 {
		fmt.Fprintln(os.Stderr, "scale: -kubeconfig needs -pids")
		os.Exit(2)
	}
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
	restart              bool
	serverFlags          []string
	kubeconfig           string // a control plane started outside the bench
	pids                 []int  // its processes
}

// checkpoint is what the server looked like when `pods` had been created.
type checkpoint struct {
	pods       int
	elapsed    time.Duration // since the first create
	rssMiB     float64       // the control plane's processes
	heapMiB    float64       // the API server's Go heap in use
	watchP99   time.Duration // create sent to ADDED seen, pods created since the last checkpoint
	list       time.Duration // every pod, from the server's watch cache (resourceVersion=0)
	listQuorum time.Duration // every pod, a consistent read
	listPage   time.Duration // the first 500
	err        error
}

// plane is the control plane under test: a skiff server the bench started,
// or processes started outside it.
type plane struct {
	config *rest.Config
	srv    *benchserver.Server // nil for a plane started outside
	pids   []int
}

func (p *plane) rssMiB() float64 {
	if p.srv != nil {
		return rssMiB(p.srv.Cmd.Process.Pid)
	}
	var sum float64
	for _, pid := range p.pids {
		sum += rssMiB(pid)
	}
	return sum
}

func startPlane(cfg config) (*plane, func(), error) {
	if cfg.kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
		if err != nil {
			return nil, nil, err
		}
		fmt.Printf("control plane of %s, processes %v, RSS %.0f MiB\n", cfg.kubeconfig, cfg.pids, (&plane{pids: cfg.pids}).rssMiB())
		return &plane{config: rc, pids: cfg.pids}, func() {}, nil
	}
	extra := []string{"--log-level", "error", "--dashboard-port", "0"}
	if cfg.noControllers {
		extra = append(extra, "--disable-controllers")
	}
	extra = append(extra, cfg.serverFlags...)
	srv, err := benchserver.Start(cfg.bin, extra...)
	if err != nil {
		return nil, nil, err
	}
	p := &plane{config: srv.Config, srv: srv}
	fmt.Printf("server ready in %s, RSS %.0f MiB\n", srv.Ready.Sub(srv.Started).Round(time.Millisecond), p.rssMiB())
	return p, srv.Close, nil
}

func run(cfg config) error {
	cp, closePlane, err := startPlane(cfg)
	if err != nil {
		return err
	}
	defer closePlane()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	cs := benchserver.Clients(cp.config, cfg.clients+2)
	probe, watcher, creators := cs[0], cs[1], cs[2:]
	if _, err := probe.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the default ServiceAccount: %w", err)
	}

	// Simulated nodes, in this process.
	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan error, 1)
	go func() {
		simDone <- sim.Run(simCtx, sim.Config{
			RESTConfig: cp.config, Nodes: cfg.nodes, PodWorkers: cfg.podWorkers,
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
	fmt.Printf("%d simulated nodes Ready and schedulable in %s, RSS %.0f MiB\n", cfg.nodes, time.Since(t0).Round(time.Millisecond), cp.rssMiB())

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
			cps <- measure(ctx, probe, cp, n, time.Since(start))
		}
	}()
	var next atomic.Int64
	sent := make([]time.Time, cfg.pods) // when each create was sent; each index is written by one creator
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
				sent[i] = t
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
		// The checkpoints were taken while creating: print them, as a
		// slow control plane's memory is the figure compared.
		<-monDone
		close(cps)
		printCheckpoints(cps, nil)
		b, r := tr.counts()
		return fmt.Errorf("timed out with %d of %d pods bound, %d running", b, cfg.pods, r)
	}
	fmt.Printf("all bound %s after the first create, all running %s after it\n",
		tr.allBound.Sub(start).Round(time.Millisecond), tr.allRunning.Sub(start).Round(time.Millisecond))
	watchLats := tr.deliveries(sent)
	if tr.relists > 0 {
		fmt.Printf("the pod watch expired %d times and was resumed from a LIST\n", tr.relists)
	}
	fmt.Printf("watch delivery, create sent to ADDED seen: p50 %s p99 %s max %s\n",
		pct(sortedCopy(watchLats), 0.50), pct(sortedCopy(watchLats), 0.99), slices.Max(watchLats).Round(time.Millisecond))
	<-monDone
	close(cps)
	printCheckpoints(cps, watchLats)
	// Settled: every pod bound and running.
	printCheckpoint("settled", measure(ctx, probe, cp, cfg.pods, time.Since(start)))
	if err := verifyPods(ctx, probe, cfg.pods); err != nil {
		return err
	}
	fmt.Printf("all %d acknowledged pods present\n", cfg.pods)
	if cp.srv == nil || !cfg.restart {
		return nil
	}

	// A restart with every pod stored: SIGTERM, start, ready; then nothing lost.
	t := time.Now()
	if err := cp.srv.Restart(5 * time.Minute); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	fmt.Printf("\nrestart with %d pods stored: stopped in %s, ready %s after start, RSS %.0f MiB\n", cfg.pods,
		cp.srv.Started.Sub(t).Round(time.Millisecond), cp.srv.Ready.Sub(cp.srv.Started).Round(time.Millisecond), cp.rssMiB())
	if err := verifyPods(ctx, probe, cfg.pods); err != nil {
		return fmt.Errorf("after the restart: %w", err)
	}
	fmt.Printf("all %d acknowledged pods present after the restart\n", cfg.pods)
	return nil
}

// printCheckpoints prints the table of checkpoints; watchLats, the watch
// delivery latency of each pod in creation order, may be nil when the watch
// did not see them all.
func printCheckpoints(cps <-chan checkpoint, watchLats []time.Duration) {
	fmt.Printf("\n%8s %10s %9s %9s %11s %12s %12s %10s\n", "pods", "elapsed", "RSS MiB", "heap MiB", "WATCH p99", "LIST rv=0", "LIST quorum", "LIST 500")
	prev := 0
	for c := range cps {
		if watchLats != nil {
			c.watchP99 = pct(sortedCopy(watchLats[prev:c.pods]), 0.99)
		}
		prev = c.pods
		printCheckpoint(strconv.Itoa(c.pods), c)
	}
}

func printCheckpoint(label string, c checkpoint) {
	if c.err != nil {
		fmt.Printf("%8s %10s %9.0f  list failed: %v\n", label, c.elapsed.Round(time.Millisecond), c.rssMiB, c.err)
		return
	}
	watch := "-"
	if c.watchP99 > 0 {
		watch = c.watchP99.String()
	}
	fmt.Printf("%8s %10s %9.0f %9.0f %11s %12s %12s %10s\n", label, c.elapsed.Round(time.Millisecond), c.rssMiB, c.heapMiB,
		watch, c.list.Round(time.Millisecond), c.listQuorum.Round(time.Millisecond), c.listPage.Round(time.Millisecond))
}

// verifyPods checks, with a consistent list, that every pod the bench
// created (and the server acknowledged) is stored.
func verifyPods(ctx context.Context, c kubernetes.Interface, n int) error {
	list, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=scale"})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	have := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		have[list.Items[i].Name] = true
	}
	var missing []string
	for i := range n {
		if name := podName(i); !have[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d of %d acknowledged pods missing, e.g. %s", len(missing), n, missing[0])
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

func measure(ctx context.Context, c kubernetes.Interface, cp *plane, pods int, elapsed time.Duration) checkpoint {
	ck := checkpoint{pods: pods, elapsed: elapsed, rssMiB: cp.rssMiB(), heapMiB: heapInUseMiB(ctx, c)}
	t := time.Now()
	if _, ck.err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: "0"}); ck.err != nil {
		return ck
	}
	ck.list = time.Since(t)
	t = time.Now()
	if _, ck.err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); ck.err != nil {
		return ck
	}
	ck.listQuorum = time.Since(t)
	t = time.Now()
	if _, ck.err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 500}); ck.err != nil {
		return ck
	}
	ck.listPage = time.Since(t)
	return ck
}

// heapInUseMiB reads go_memstats_heap_inuse_bytes from the API server's
// /metrics (for Skiff the whole control plane; 0 if unreadable).
func heapInUseMiB(ctx context.Context, c kubernetes.Interface) float64 {
	b, err := c.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f / (1 << 20)
		}
	}
	return 0
}

func podName(i int) string { return fmt.Sprintf("p-%06d", i) }

func benchPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName(i), Labels: map[string]string{"app": "scale"}},
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
	seen                 []time.Time // when each pod's first event arrived, by index
	relists              int
	allBound, allRunning time.Time
}

func newTracker(want int) *tracker {
	return &tracker{want: want, bound: make(map[string]bool, want), running: make(map[string]bool, want),
		seen: make([]time.Time, want)}
}

// deliveries returns, by pod index, how long after its create was sent the
// watch delivered the pod. Call it after follow has returned.
func (t *tracker) deliveries(sent []time.Time) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]time.Duration, len(t.seen))
	for i, at := range t.seen {
		out[i] = at.Sub(sent[i])
	}
	return out
}

func (t *tracker) counts() (bound, running int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bound), len(t.running)
}

// follow watches pods from rv until every wanted pod is bound and running,
// watching again from the last version seen when the server ends a watch,
// and from a new LIST when that version has expired (counted in relists;
// pods first seen in such a LIST count as delivered then).
func (t *tracker) follow(ctx context.Context, c kubernetes.Interface, rv string) error {
	for {
		w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			var done bool
			if rv, done, err = t.relist(ctx, c); err != nil || done {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("watch pods: %w", err)
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				w.Stop()
				err := apierrors.FromObject(ev.Object)
				if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
					return fmt.Errorf("watch pods: %w", err)
				}
				var done bool
				if rv, done, err = t.relist(ctx, c); err != nil || done {
					return err
				}
				break
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

// relist observes every pod from a consistent LIST and returns its version,
// and whether that made every wanted pod bound and running.
func (t *tracker) relist(ctx context.Context, c kubernetes.Interface) (rv string, done bool, err error) {
	t.mu.Lock()
	t.relists++
	t.mu.Unlock()
	list, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", false, fmt.Errorf("list pods after an expired watch: %w", err)
	}
	for i := range list.Items {
		done = t.observe(&list.Items[i])
	}
	return list.ResourceVersion, done, nil
}

func (t *tracker) observe(p *corev1.Pod) (done bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if i, err := strconv.Atoi(strings.TrimPrefix(p.Name, "p-")); err == nil && i >= 0 && i < len(t.seen) && t.seen[i].IsZero() {
		t.seen[i] = now
	}
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

func sortedCopy(d []time.Duration) []time.Duration {
	out := slices.Clone(d)
	slices.Sort(out)
	return out
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
