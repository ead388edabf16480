// Command scheduler measures Skiff's scheduler end to end through the API:
// it starts `skiff server`, creates N nodes and M pods, and reports pods
// bound per second (first pod created to last pod bound) and the per-pod
// latency from creation to binding. With -cpuprofile it also saves a CPU
// profile of the server (the scheduler runs inside it).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

func main() {
	bin := flag.String("skiff", "bin/skiff", "path of the skiff binary")
	nodes := flag.String("nodes", "1000,5000", "node counts to run, comma-separated")
	pods := flag.Int("pods", 10000, "pods per run")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the server during the last plain run to this file")
	flag.Parse()
	fmt.Printf("%-10s %-16s %8s %14s %22s\n", "nodes", "workload", "pods", "pods/s", "latency p50 / p99")
	counts := splitInts(*nodes)
	for i, n := range counts {
		for _, w := range []string{"plain", "spread"} {
			prof := ""
			if w == "plain" && i == len(counts)-1 {
				prof = *profile
			}
			if err := run(*bin, n, *pods, w, prof); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
		}
	}
	fmt.Println("upstream kube-scheduler v1.37 on this machine (design.md): 297 pods/s at 1,000 nodes, 227 pods/s at 5,000 nodes (plain pods)")
}

func splitInts(s string) []int {
	var out []int
	cur := ""
	for _, r := range s + "," {
		if r == ',' {
			if n, err := strconv.Atoi(cur); err == nil {
				out = append(out, n)
			}
			cur = ""
			continue
		}
		cur += string(r)
	}
	return out
}

func run(bin string, nNodes, nPods int, workload, profile string) error {
	// Controllers stay off: this measures the scheduler, as upstream's figures do.
	extra := []string{"--log-level", "error", "--disable-controllers"}
	if profile != "" {
		extra = append(extra, "--pprof-address", "127.0.0.1:6061")
	}
	srv, err := benchserver.Start(bin, extra...)
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx := context.Background()
	cs := srv.Clients(8)
	// Pods need their ServiceAccount, which the controllers (off here)
	// would create.
	if _, err := cs[0].CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the default ServiceAccount: %w", err)
	}

	// Nodes: 4 zones, room for every pod.
	if err := parallel(nNodes, 64, func(i int) error {
		name := fmt.Sprintf("node-%05d", i)
		c := cs[i%len(cs)]
		node, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%4),
			}},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		// Admission taints new nodes not-ready; with the controllers off,
		// lift it as the node lifecycle controller would for a Ready node.
		node.Spec.Taints = nil
		_, err = c.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("create nodes: %w", err)
	}
	time.Sleep(time.Second) // let the scheduler's node informer catch up

	// Watch bindings before creating pods.
	w, err := cs[0].CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	defer w.Stop()
	var created sync.Map // name -> time.Time
	boundAt := make(map[string]time.Time, nPods)
	doneCh := make(chan error, 1)
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || p.Spec.NodeName == "" {
				continue
			}
			if _, seen := boundAt[p.Name]; !seen {
				boundAt[p.Name] = time.Now()
				if len(boundAt) == nPods {
					doneCh <- nil
					return
				}
			}
		}
		doneCh <- fmt.Errorf("watch ended after %d bindings", len(boundAt))
	}()

	var stopProfile func() error
	if profile != "" {
		stopProfile = startProfile(profile)
	}
	var first atomic.Int64
	start := time.Now()
	if err := parallel(nPods, 64, func(i int) error {
		p := benchPod(fmt.Sprintf("pod-%05d", i), workload)
		first.CompareAndSwap(0, time.Now().UnixNano())
		created.Store(p.Name, time.Now())
		_, err := cs[i%len(cs)].CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("create pods: %w", err)
	}
	select {
	case err := <-doneCh:
		if err != nil {
			return err
		}
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("timed out with %d of %d pods bound", len(boundAt), nPods)
	}
	var last time.Time
	lat := make([]time.Duration, 0, nPods)
	for name, t := range boundAt {
		c, _ := created.Load(name)
		lat = append(lat, t.Sub(c.(time.Time)))
		if t.After(last) {
			last = t
		}
	}
	if stopProfile != nil {
		if err := stopProfile(); err != nil {
			return err
		}
	}
	_ = start
	elapsed := last.Sub(time.Unix(0, first.Load()))
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("%-10d %-16s %8d %14.0f %10s / %s\n", nNodes, workload, nPods, float64(nPods)/elapsed.Seconds(),
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond))
	return nil
}

func benchPod(name, workload string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox:1.35",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
			}},
		}}},
	}
	if workload == "spread" {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
			MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bench"}},
		}}
	}
	return p
}

func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// startProfile begins a CPU profile of the server through its pprof
// endpoint; the returned function waits for it and saves it.
func startProfile(path string) func() error {
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://127.0.0.1:6061/debug/pprof/profile?seconds=10")
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		done <- err
	}()
	return func() error { return <-done }
}
