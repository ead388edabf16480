// Command podstartup measures pod startup latency on this machine: the time
// from the API create call to the pod being seen Running (image present),
// for pods created one at a time and for pods created all at once. It also
// reports how long `skiff up` takes to a Ready node and the idle RSS of
// the whole single-node cluster (skiff plus its containerd).
//
//	go run ./bench/podstartup [-pods 50]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

const node = "bench-node"

func main() {
	bin := flag.String("bin", "bin/skiff", "skiff binary")
	images := flag.String("images", "bin/images", "image archives to import (make images)")
	pods := flag.Int("pods", 50, "pods per scenario")
	flag.Parse()
	if err := run(*bin, *images, *pods); err != nil {
		fmt.Fprintln(os.Stderr, "podstartup:", err)
		os.Exit(1)
	}
}

func run(bin, images string, n int) error {
	images, _ = filepath.Abs(images)
	srv, err := benchserver.StartUp(bin, "--node-name", node, "--images-dir", images,
		"--cni-bridge", "skiffbench0", "--cluster-cidr", "10.79.0.0/16", "--log-level", "warn")
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ready, err := srv.NodeReady(ctx, node)
	if err != nil {
		return err
	}
	fmt.Printf("skiff up → API ready:  %s\n", srv.Ready.Sub(srv.Started).Round(time.Millisecond))
	fmt.Printf("skiff up → node Ready: %s (includes importing the images on first start)\n", ready.Sub(srv.Started).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // let start-up work settle before reading memory
	fmt.Printf("idle RSS: skiff %.1f MiB, containerd %.1f MiB\n", rssMiB(srv.Cmd.Process.Pid), rssMiB(containerdPid(srv.Dir)))

	client := srv.Clients(1)[0]
	// Warm the image and the runtime once, as "image present" means.
	if _, err := startPods(ctx, client, "warm", 1, false); err != nil {
		return err
	}
	seq, err := startPods(ctx, client, "seq", n, false)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("%d pods, one at a time", n), seq)
	before := sampleCPU(srv.Cmd.Process.Pid, containerdPid(srv.Dir))
	par, err := startPods(ctx, client, "par", n, true)
	if err != nil {
		return err
	}
	report(fmt.Sprintf("%d pods, created at once", n), par)
	sampleCPU(srv.Cmd.Process.Pid, containerdPid(srv.Dir)).report(before)
	fmt.Printf("with %d pods running: skiff %.1f MiB, containerd %.1f MiB (+ ~14 MiB per pod in shims)\n",
		2*n+1, rssMiB(srv.Cmd.Process.Pid), rssMiB(containerdPid(srv.Dir)))
	return nil
}

// startPods creates n busybox pods (sequentially: each after the previous
// is Running) and returns each one's create → Running latency.
func startPods(ctx context.Context, client kubernetes.Interface, prefix string, n int, together bool) ([]time.Duration, error) {
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=" + prefix})
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Duration{}
	create := func(i int) error {
		name := fmt.Sprintf("%s-%d", prefix, i)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": prefix}},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sleep", "3600"}}},
			},
		}
		mu.Lock()
		created[name] = time.Now()
		mu.Unlock()
		_, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		return err
	}
	waitRunning := func(want int) error {
		for {
			mu.Lock()
			done := len(running)
			mu.Unlock()
			if done >= want {
				return nil
			}
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					return fmt.Errorf("watch closed")
				}
				pod, isPod := ev.Object.(*corev1.Pod)
				if !isPod || ev.Type == watch.Deleted || pod.Status.Phase != corev1.PodRunning {
					continue
				}
				mu.Lock()
				if _, seen := running[pod.Name]; !seen {
					running[pod.Name] = time.Since(created[pod.Name])
				}
				mu.Unlock()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if together {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if err := create(i); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return nil, err
		}
		if err := waitRunning(n); err != nil {
			return nil, err
		}
	} else {
		for i := 0; i < n; i++ {
			if err := create(i); err != nil {
				return nil, err
			}
			if err := waitRunning(i + 1); err != nil {
				return nil, err
			}
		}
	}
	out := make([]time.Duration, 0, len(running))
	for _, d := range running {
		out = append(out, d)
	}
	return out, nil
}

func report(what string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	pct := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
	fmt.Printf("pod startup (create → Running), %s: p50 %s  p99 %s  max %s\n", what,
		pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

func containerdPid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "agent", "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// rssMiB reads VmRSS from /proc.
func rssMiB(pid int) float64 {
	if pid == 0 {
		return 0
	}
	out, err := exec.Command("grep", "VmRSS", fmt.Sprintf("/proc/%d/status", pid)).Output()
	if err != nil {
		return 0
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return 0
	}
	kb, _ := strconv.ParseFloat(f[1], 64)
	return kb / 1024
}

// cpuSample is CPU time used so far, in seconds: the machine's (all but
// idle and iowait), skiff's, containerd's own and that of the children it
// reaped (the CNI plugins, and the short-lived `shim start` processes), the
// running shims' own and that of the children they reaped (runc).
type cpuSample struct {
	at                             time.Time
	machine, skiff                 float64
	containerd, containerdChildren float64
	shims, shimChildren            float64
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTicks = 100

func sampleCPU(skiffPid, containerdPid int) cpuSample {
	s := cpuSample{at: time.Now()}
	s.skiff, _ = procCPU(skiffPid)
	s.containerd, s.containerdChildren = procCPU(containerdPid)
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		// cpu user nice system idle iowait irq softirq steal ...
		for i, f := range strings.Fields(line)[1:] {
			if v, err := strconv.ParseFloat(f, 64); err == nil && i != 3 && i != 4 {
				s.machine += v / clockTicks
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), "containerd-shim") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			own, children := procCPU(pid)
			s.shims += own
			s.shimChildren += children
		}
	}
	return s
}

// procCPU is a process's user plus system time, and that of its reaped
// children.
func procCPU(pid int) (own, children float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the parenthesised command: state is the first; utime,
	// stime, cutime and cstime the 12th to 15th.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 15 {
		return 0, 0
	}
	v := func(i int) float64 { x, _ := strconv.ParseFloat(f[i], 64); return x / clockTicks }
	return v(11) + v(12), v(13) + v(14)
}

// report prints where the CPU went since before: the burst is bound by the
// machine's cores when busy time nears wall time times the core count.
func (s cpuSample) report(before cpuSample) {
	wall := s.at.Sub(before.at).Seconds()
	busy := s.machine - before.machine
	parts := []struct {
		name string
		secs float64
	}{
		{"skiff", s.skiff - before.skiff},
		{"containerd", s.containerd - before.containerd},
		{"CNI plugins and shim starts", s.containerdChildren - before.containerdChildren},
		{"shims", s.shims - before.shims},
		{"runc", s.shimChildren - before.shimChildren},
	}
	fmt.Printf("CPU during the burst: %.1f core-seconds in %.1f s (%.2f of %d cores busy):", busy, wall, busy/wall, runtime.NumCPU())
	rest := busy
	for _, p := range parts {
		fmt.Printf(" %s %.1f,", p.name, p.secs)
		rest -= p.secs
	}
	fmt.Printf(" the rest (this bench, the kernel's work for all) %.1f\n", rest)
}
