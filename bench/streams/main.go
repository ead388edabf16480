// Command streams measures what users feel of the streaming paths:
// `kubectl exec pod -- true` round trips (p50/p99) and port-forward
// throughput, against a single-node `skiff up` on this machine.
//
//	go run ./bench/streams [-kubectl /usr/bin/kubectl] [-n 30] [-mb 200]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/skiff-dev/skiff/bench/internal/benchserver"
)

func main() {
	bin := flag.String("bin", "bin/skiff", "skiff binary")
	images := flag.String("images", "bin/images", "image archives (make images)")
	kubectl := flag.String("kubectl", "/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "kubectl binary")
	n := flag.Int("n", 30, "exec round trips")
	mb := flag.Int("mb", 200, "MiB to transfer through port-forward")
	flag.Parse()
	if err := run(*bin, *images, *kubectl, *n, *mb); err != nil {
		fmt.Fprintln(os.Stderr, "streams:", err)
		os.Exit(1)
	}
}

func run(bin, images, kubectl string, n, mb int) error {
	images, _ = filepath.Abs(images)
	srv, err := benchserver.StartUp(bin, "--node-name", "bench-node", "--images-dir", images, "--kubelet-port", "10351",
		"--cni-bridge", "skiffbench1", "--cluster-cidr", "10.80.0.0/16", "--log-level", "warn")
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := srv.NodeReady(ctx, "bench-node"); err != nil {
		return err
	}
	kc := filepath.Join(srv.Dir, "server", "admin.kubeconfig")
	k := func(args ...string) error {
		out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := k("run", "web", "--image=busybox:1.36", "--image-pull-policy=IfNotPresent", "--", "httpd", "-f", "-p", "8080", "-h", "/tmp"); err != nil {
		return err
	}
	if err := k("wait", "--for=condition=Ready", "pod/web", "--timeout=60s"); err != nil {
		return err
	}

	var lat []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := k("exec", "web", "--", "true"); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("kubectl exec web -- true (%s, %d runs, includes kubectl start-up): p50 %s  p99 %s\n",
		filepath.Base(kubectl), n, lat[n/2].Round(time.Millisecond), lat[(n*99)/100].Round(time.Millisecond))

	if err := k("exec", "web", "--", "dd", "if=/dev/zero", "of=/tmp/blob", "bs=1048576", fmt.Sprintf("count=%d", mb)); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pf := exec.CommandContext(ctx, kubectl, "--kubeconfig", kc, "port-forward", "pod/web", fmt.Sprintf("%d:8080", port))
	if err := pf.Start(); err != nil {
		return err
	}
	defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/blob", port)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	start := time.Now()
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Printf("port-forward throughput (%s): %d MiB in %.2f s = %.1f MB/s\n", filepath.Base(kubectl), got>>20, secs, float64(got)/1e6/secs)
	return nil
}
