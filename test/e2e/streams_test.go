package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStreamingCommands runs kubectl logs, exec, attach, port-forward, cp
// and top against real containers, with the oldest and newest kubectl
// (SPDY for 1.27, WebSocket with its fallbacks for 1.33).
func TestStreamingCommands(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e2", "--cluster-cidr", "10.76.0.0/16")
	k := c.kubectl()
	applyYAML(k, `
apiVersion: v1
kind: Pod
metadata: {name: talker, labels: {app: talker}}
spec:
  containers:
  - name: counter
    image: busybox
    command: [sh, -c, 'i=0; while true; do echo "line $i"; i=$((i+1)); sleep 0.2; done']
  - name: quiet
    image: busybox
    command: [sh, -c, 'echo quiet-start; exec sleep 3600']
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: httpd
    image: busybox
    command: [httpd, -f, -p, "8080", -h, /var/www]
    ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'echo "run at $(date +%s%N)"; sleep 1; exit 1']
---
apiVersion: v1
kind: Pod
metadata: {name: burner}
spec:
  containers:
  - name: spin
    image: busybox
    command: [sh, -c, 'while true; do :; done']
`)
	for _, name := range []string{"talker", "web", "burner"} {
		waitPod(t, k, name, 60*time.Second, "Ready", func(p podJSON) bool { return p.condition("Ready") == "True" })
	}

	for version := range kubectlVersions {
		t.Run("kubectl "+version, func(t *testing.T) {
			k := kubectl{t: t, bin: kubectlBin(t, version), kubeconfig: c.kubeconfig}
			testLogs(t, k)
			testExec(t, k)
			testPortForward(t, k)
			testCopy(t, k)
			testAttach(t, k)
			if version != "1.27" {
				// kubectl 1.30+ must get WebSocket itself, not its SPDY fallback.
				out, err := exec.Command(k.bin, "--kubeconfig", k.kubeconfig, "exec", "-v=6", "talker", "-c", "quiet", "--", "true").CombinedOutput()
				if err != nil || !strings.Contains(string(out), "101 Switching Protocols") || strings.Contains(string(out), "fallback") {
					t.Errorf("exec did not use WebSocket (%v):\n%s", err, out)
				}
			}
		})
	}

	t.Run("websocket subprotocols", func(t *testing.T) {
		testWebSocketProtocols(t, c.kubeconfig, "talker", "quiet", "quiet-start")
	})

	t.Run("logs --previous", func(t *testing.T) {
		waitPod(t, k, "crasher", 60*time.Second, "a restart", func(p podJSON) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
		})
		prev := k.must("logs", "crasher", "--previous")
		cur, err := k.run("", "logs", "crasher")
		if !strings.HasPrefix(prev, "run at ") || (err == nil && strings.TrimSpace(prev) == strings.TrimSpace(cur)) {
			t.Errorf("--previous gave %q, current %q", prev, cur)
		}
	})

	t.Run("top", func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := k.run("", "top", "pod", "burner", "--no-headers")
			if err == nil {
				f := strings.Fields(out)
				if len(f) >= 3 && f[0] == "burner" && strings.HasSuffix(f[1], "m") && f[1] != "0m" {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("kubectl top pod shows no CPU use for a busy pod: %q %v", out, err)
			}
			time.Sleep(time.Second)
		}
		out := k.must("top", "node", "--no-headers")
		if f := strings.Fields(out); len(f) < 5 || f[0] != c.node {
			t.Errorf("kubectl top node: %q", out)
		}
	})

	t.Run("errors", func(t *testing.T) {
		out, err := k.run("", "exec", "talker", "-c", "nope", "--", "true")
		if err == nil || !strings.Contains(out, "container nope is not valid for pod talker") {
			t.Errorf("exec into a missing container: %v %q", err, out)
		}
		out, err = k.run("", "logs", "talker")
		if err == nil || !strings.Contains(out, "a container name must be specified") && !strings.Contains(out, "Defaulted container") {
			// kubectl 1.33 defaults to the first container itself.
			if err != nil {
				t.Errorf("logs of a two-container pod: %v %q", err, out)
			}
		}
		out, err = k.run("", "logs", "nosuchpod")
		if err == nil || !strings.Contains(out, `pods "nosuchpod" not found`) {
			t.Errorf("logs of a missing pod: %v %q", err, out)
		}
	})
}

func testLogs(t *testing.T, k kubectl) {
	t.Helper()
	out := k.must("logs", "talker", "-c", "counter", "--tail=2")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "line ") {
		t.Errorf("logs --tail=2: %q", out)
	}
	if out := k.must("logs", "talker", "-c", "quiet"); strings.TrimSpace(out) != "quiet-start" {
		t.Errorf("logs -c quiet: %q", out)
	}
	out = k.must("logs", "talker", "-c", "counter", "--tail=1", "--timestamps")
	if ts, _, _ := strings.Cut(out, " "); len(ts) < 20 || !strings.Contains(ts, "T") {
		t.Errorf("logs --timestamps: %q", out)
	}
	out = k.must("logs", "-l", "app=talker", "--all-containers", "--tail=1")
	if !strings.Contains(out, "quiet-start") || !strings.Contains(out, "line ") {
		t.Errorf("logs -l --all-containers: %q", out)
	}
	if out := k.must("logs", "talker", "-c", "counter", "--limit-bytes=5"); len(out) != 5 {
		t.Errorf("logs --limit-bytes=5 gave %d bytes", len(out))
	}

	// -f sees lines as they are printed.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, "--kubeconfig", k.kubeconfig, "logs", "-f", "talker", "-c", "counter", "--tail=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var nums []int
	for len(nums) < 4 && sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "line ")); err == nil {
			nums = append(nums, n)
		}
	}
	cancel()
	_ = cmd.Wait()
	if len(nums) < 4 || nums[3] <= nums[0] {
		t.Errorf("logs -f did not follow new lines: %v", nums)
	}
}

func testExec(t *testing.T, k kubectl) {
	t.Helper()
	out, err := k.run("", "exec", "talker", "-c", "quiet", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if err == nil {
		t.Fatal("exit code 3 was not propagated")
	}
	var ee *exec.ExitError
	if !asExit(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("kubectl exit code: %v", err)
	}
	if !strings.Contains(out, "out") || !strings.Contains(out, "err") {
		t.Errorf("exec output: %q", out)
	}
	// Stdin.
	if out, err := k.run("hello stdin\n", "exec", "-i", "talker", "-c", "quiet", "--", "cat"); err != nil || out != "hello stdin\n" {
		t.Errorf("exec -i: %q %v", out, err)
	}
	// A TTY under a pseudo-terminal, with the window size passed through
	// (containerd 1.6 applies the first resize just after the start).
	script := fmt.Sprintf("%s --kubeconfig %s exec -it talker -c quiet -- sh -c 'tty; sleep 1; stty size; exit 5'", k.bin, k.kubeconfig)
	cmd := exec.Command("script", "-qec", "stty cols 91 rows 17; "+script, "/dev/null")
	cmd.Stdin = strings.NewReader("")
	tout, err := cmd.CombinedOutput()
	if !strings.Contains(string(tout), "/dev/pts/") || !strings.Contains(string(tout), "17 91") {
		t.Errorf("exec -it: %q", tout)
	}
	if !asExit(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("exec -it exit code: %v (%q)", err, tout)
	}
}

func asExit(err error, target **exec.ExitError) bool {
	for err != nil {
		if e, ok := err.(*exec.ExitError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func testPortForward(t *testing.T, k kubectl) {
	t.Helper()
	for _, target := range []string{"pod/web", "service/web"} {
		port := freePort(t)
		remote := "8080"
		if target == "service/web" {
			remote = "80"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, k.bin, "--kubeconfig", k.kubeconfig, "port-forward", target, fmt.Sprintf("%d:%s", port, remote))
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var body string
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body = string(b)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		// A second request over the same session works too.
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
		cancel()
		_ = cmd.Wait()
		if strings.TrimSpace(body) != "busybox httpd" || err != nil || resp.StatusCode != 200 {
			t.Errorf("port-forward %s: body %q, second request %v; kubectl said:\n%s", target, body, err, logs.String())
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}

func testCopy(t *testing.T, k kubectl) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "in.bin")
	data := bytes.Repeat([]byte("skiff-cp\x00\xff"), 50000)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	k.must("cp", src, "talker:/tmp/in.bin", "-c", "quiet")
	k.must("cp", "talker:/tmp/in.bin", filepath.Join(dir, "out.bin"), "-c", "quiet")
	got, err := os.ReadFile(filepath.Join(dir, "out.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("kubectl cp round trip: %d bytes back, want %d (%v)", len(got), len(data), err)
	}
}

func testAttach(t *testing.T, k kubectl) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, "--kubeconfig", k.kubeconfig, "attach", "talker", "-c", "counter")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	got := 0
	for got < 2 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "line ") {
			got++
		}
	}
	cancel()
	_ = cmd.Wait()
	if got < 2 {
		t.Errorf("attach saw %d lines of output", got)
	}
}
