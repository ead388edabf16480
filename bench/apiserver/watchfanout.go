package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

// sentAnnotation carries the time a write was sent, so that each watcher
// can tell how long the change took to reach it.
const sentAnnotation = "bench.skiff.dev/sent"

// fanoutResult is one binary's figures for the node-filtered fan-out:
// with writes through the API, and with writes straight to etcd, which
// leave the server only the watch cache's work, the fan-out itself.
type fanoutResult struct {
	api, direct phaseResult
}

type phaseResult struct {
	eventsPerSec float64
	p50, p99     time.Duration
}

func summarize(lat []time.Duration, elapsed time.Duration) phaseResult {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return phaseResult{
		eventsPerSec: float64(len(lat)) / elapsed.Seconds(),
		p50:          lat[len(lat)/2],
		p99:          lat[min(len(lat)-1, len(lat)*99/100)],
	}
}

// runWatchFanout measures what 5,000 kubelets put on the API server: each
// node's pod watch (fieldSelector spec.nodeName=<node>) while pods bound
// to random nodes are created and updated. Every write concerns exactly
// one watcher. With a baseline binary it measures both and prints them
// side by side.
func runWatchFanout(bin, baseline string, nodes, writes, direct int) error {
	bins := []string{bin}
	if baseline != "" {
		bins = append([]string{baseline}, bin)
	}
	var res []fanoutResult
	for _, b := range bins {
		fmt.Printf("watch fan-out: %s, %d node-filtered pod watches, %d pod writes through the API, %d to etcd\n", b, nodes, writes, direct)
		r, err := watchFanoutOnce(b, nodes, writes, direct)
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		res = append(res, r)
	}
	fmt.Printf("  %-44s", "measure")
	for _, b := range bins {
		fmt.Printf(" %-26s", b)
	}
	fmt.Println()
	row := func(name string, f func(fanoutResult) string) {
		fmt.Printf("  %-44s", name)
		for _, r := range res {
			fmt.Printf(" %-26s", f(r))
		}
		fmt.Println()
	}
	phases := []struct {
		name string
		get  func(fanoutResult) phaseResult
	}{
		{"API writes", func(r fanoutResult) phaseResult { return r.api }},
		{"etcd writes (cache alone)", func(r fanoutResult) phaseResult { return r.direct }},
	}
	for _, ph := range phases {
		row(ph.name+": events/s", func(r fanoutResult) string { return fmt.Sprintf("%.0f /s", ph.get(r).eventsPerSec) })
		row(ph.name+": latency p50 / p99", func(r fanoutResult) string { return ms(ph.get(r).p50) + " / " + ms(ph.get(r).p99) })
		if len(res) == 2 {
			before, after := ph.get(res[0]), ph.get(res[1])
			fmt.Printf("  %-44s %.1fx events/s, %.1fx p50, %.1fx p99\n", ph.name+": speed-up", after.eventsPerSec/before.eventsPerSec,
				float64(before.p50)/float64(max(after.p50, 1)), float64(before.p99)/float64(max(after.p99, 1)))
		}
	}
	return nil
}

func watchFanoutOnce(bin string, nodes, writes, direct int) (fanoutResult, error) {
	extra := append([]string{"--log-level", "warn", "--disable-scheduler", "--disable-controllers"}, serverFlags...)
	srv, err := benchserver.Start(bin, extra...)
	if err != nil {
		return fanoutResult{}, err
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := srv.Clients(1)[0]
	if err := createNamespace(ctx, admin, "fanout"); err != nil {
		return fanoutResult{}, err
	}
	list, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return fanoutResult{}, err
	}

	// HTTP/2 multiplexes streams; spread the watches over connections.
	wcs := srv.Clients((nodes + 199) / 200)
	latencies := make(chan time.Duration, max(writes, direct))
	var wg sync.WaitGroup
	for i := 0; i < nodes; i++ {
		w, err := wcs[i%len(wcs)].CoreV1().Pods("").Watch(ctx, metav1.ListOptions{
			FieldSelector: "spec.nodeName=" + nodeName(i), ResourceVersion: list.ResourceVersion,
		})
		if err != nil {
			return fanoutResult{}, fmt.Errorf("watch %d: %w", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Stop()
			for ev := range w.ResultChan() {
				now := time.Now()
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
					continue
				}
				if sent, err := strconv.ParseInt(pod.Annotations[sentAnnotation], 10, 64); err == nil {
					latencies <- now.Sub(time.Unix(0, sent))
				}
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	time.Sleep(time.Second) // let the last watches register

	// collect waits for n deliveries, each write reaching one watcher.
	collect := func(start time.Time, n int) (phaseResult, error) {
		lat := make([]time.Duration, 0, n)
		timeout := time.After(120 * time.Second)
		for len(lat) < n {
			select {
			case d := <-latencies:
				lat = append(lat, d)
			case <-timeout:
				return phaseResult{}, fmt.Errorf("only %d of %d events delivered", len(lat), n)
			}
		}
		return summarize(lat, time.Since(start)), nil
	}
	var res fanoutResult
	start := time.Now()
	if err := fanoutWrites(ctx, srv.Clients(8), nodes, writes); err != nil {
		return res, err
	}
	if res.api, err = collect(start, writes); err != nil {
		return res, err
	}
	start = time.Now()
	if err := etcdWrites(ctx, srv.Dir, nodes, direct); err != nil {
		return res, err
	}
	if res.direct, err = collect(start, direct); err != nil {
		return res, err
	}
	return res, nil
}

func nodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// fanoutWrites creates pods bound to random nodes, half of the writes, and
// then updates each once (an annotation: a bound pod's node never changes),
// from 32 concurrent writers.
func fanoutWrites(ctx context.Context, cs []kubernetes.Interface, nodes, writes int) error {
	creates := (writes + 1) / 2
	stamp := func(p *corev1.Pod) {
		p.Annotations = map[string]string{sentAnnotation: strconv.FormatInt(time.Now().UnixNano(), 10)}
	}
	var seq atomic.Int64
	create := func(c kubernetes.Interface) error {
		n := seq.Add(1)
		p := benchPod(fmt.Sprintf("f-%06d", n))
		p.Spec.NodeName = nodeName(rand.IntN(nodes))
		stamp(p)
		_, err := c.CoreV1().Pods("fanout").Create(ctx, p, metav1.CreateOptions{})
		return err
	}
	if _, _, err := load(cs, 32, creates, create); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	seq.Store(0)
	update := func(c kubernetes.Interface) error {
		pods := c.CoreV1().Pods("fanout")
		p, err := pods.Get(ctx, fmt.Sprintf("f-%06d", seq.Add(1)), metav1.GetOptions{})
		if err != nil {
			return err
		}
		stamp(p)
		_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
		return err
	}
	if _, _, err := load(cs, 32, writes-creates, update); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}
