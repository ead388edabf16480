package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRuntimeClassEphemeralAndResize runs pods through a RuntimeClass
// (containerd's "runc" handler, and one containerd lacks), adds ephemeral
// containers with kubectl debug, and resizes a running pod in place.
func TestRuntimeClassEphemeralAndResize(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e10", "--cluster-cidr", "10.66.0.0/16")
	k := c.kubectl()
	applyYAML(k, `
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: runc}
handler: runc
overhead:
  podFixed: {cpu: 10m, memory: 1Mi}
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: missing}
handler: nosuchhandler
---
apiVersion: v1
kind: Pod
metadata: {name: rc-ok}
spec:
  runtimeClassName: runc
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'exec sleep 3600']
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 200m, memory: 64Mi}
    resizePolicy:
    - {resourceName: cpu, restartPolicy: NotRequired}
---
apiVersion: v1
kind: Pod
metadata: {name: rc-missing}
spec:
  runtimeClassName: missing
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
`)
	waitPod(t, k, "rc-ok", 60*time.Second, "Ready", func(p podJSON) bool { return p.condition("Ready") == "True" })

	t.Run("RuntimeClass", func(t *testing.T) {
		if got := k.must("get", "pod", "rc-ok", "-o", "jsonpath={.spec.overhead.cpu}"); got != "10m" {
			t.Errorf("pod overhead cpu = %q, want the RuntimeClass's 10m", got)
		}
		if out, err := k.run("", "get", "runtimeclasses"); err != nil || !strings.Contains(out, "runc") || !strings.Contains(out, "HANDLER") {
			t.Errorf("kubectl get runtimeclasses: %v\n%s", err, out)
		}
		// containerd has no such handler: the sandbox is refused, the pod
		// stays Pending and says why in its events.
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, _ := k.run("", "describe", "pod", "rc-missing")
			if strings.Contains(out, "FailedCreatePodSandBox") && strings.Contains(out, "nosuchhandler") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no FailedCreatePodSandBox event naming the handler:\n%s", out)
			}
			time.Sleep(time.Second)
		}
		if phase := k.must("get", "pod", "rc-missing", "-o", "jsonpath={.status.phase}"); phase != "Pending" {
			t.Errorf("phase = %q, want Pending", phase)
		}
		out, err := k.run("", "run", "rc-unknown", "--image=busybox", "--restart=Never", `--overrides={"spec":{"runtimeClassName":"nope"}}`, "--", "true")
		if err == nil || !strings.Contains(out, `pod rejected: RuntimeClass "nope" not found`) {
			t.Errorf("pod naming a missing RuntimeClass: %v %q", err, out)
		}
	})

	t.Run("Ephemeral", func(t *testing.T) {
		// A debugging container in the target's process namespace sees its
		// processes.
		k.must("debug", "rc-ok", "--image=busybox", "--target=app", "--container=dbg", "--", "sh", "-c", "ps; exec sleep 3600")
		deadline := time.Now().Add(60 * time.Second)
		for {
			st := k.must("get", "pod", "rc-ok", "-o", `jsonpath={.status.ephemeralContainerStatuses[?(@.name=="dbg")].state.running.startedAt}`)
			if st != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ephemeral container never ran:\n%s", k.must("describe", "pod", "rc-ok"))
			}
			time.Sleep(500 * time.Millisecond)
		}
		var logs string
		deadline = time.Now().Add(30 * time.Second)
		for !strings.Contains(logs, "sleep 3600") {
			if time.Now().After(deadline) {
				t.Fatalf("the debug container does not see the target's sleep; its ps:\n%s", logs)
			}
			time.Sleep(500 * time.Millisecond)
			logs, _ = k.run("", "logs", "rc-ok", "-c", "dbg")
		}

		// kubectl debug -i attaches to the new container, with the oldest
		// and newest kubectl the machine has.
		for i, version := range []string{"1.27", "1.33"} {
			kv := kubectl{t: t, bin: kubectlBin(t, version), kubeconfig: k.kubeconfig}
			debugInteractive(t, kv, fmt.Sprintf("dbg%d", i+2))
		}
		if n := k.must("get", "pod", "rc-ok", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); n != "0" {
			t.Errorf("the target restarted (%s times) when debugged", n)
		}
	})

	t.Run("Resize", func(t *testing.T) {
		k.must("patch", "pod", "rc-ok", "--subresource", "resize", "-p",
			`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"150m"},"limits":{"cpu":"300m"}}}]}}`)
		waitFor(t, func() bool {
			got := k.must("get", "pod", "rc-ok", "-o", "jsonpath={.status.containerStatuses[0].resources.limits.cpu}")
			conds := k.must("get", "pod", "rc-ok", "-o", "jsonpath={.status.conditions[*].type}")
			return got == "300m" && !strings.Contains(conds, "PodResize")
		}, "the resize to be applied")
		if got := k.must("get", "pod", "rc-ok", "-o", "jsonpath={.status.containerStatuses[0].allocatedResources.cpu}"); got != "150m" {
			t.Errorf("allocatedResources.cpu = %q, want 150m", got)
		}
		// The container's cgroup has the new quota (300m of a 100 ms period).
		quota := k.must("exec", "rc-ok", "-c", "app", "--", "sh", "-c",
			"cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max")
		if !strings.HasPrefix(strings.TrimSpace(quota), "30000") {
			t.Errorf("cpu quota in the container = %q, want 30000", quota)
		}
		if n := k.must("get", "pod", "rc-ok", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); n != "0" {
			t.Errorf("the container restarted (%s times) for a NotRequired cpu resize", n)
		}
		// A resize beyond the node is Infeasible.
		k.must("patch", "pod", "rc-ok", "--subresource", "resize", "-p",
			`{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"1000"},"limits":{"cpu":"1000"}}}]}}`)
		waitFor(t, func() bool {
			out := k.must("get", "pod", "rc-ok", "-o", `jsonpath={.status.conditions[?(@.type=="PodResizePending")].reason}`)
			return out == "Infeasible"
		}, "PodResizePending=Infeasible")
	})
}

// debugInteractive runs `kubectl debug -i` on pod rc-ok with a shell in a
// new ephemeral container and checks the shell answers. Stdin stays open
// until the answer is back: containerd detaches the output of a
// non-stdinOnce container when the attached stdin closes.
func debugInteractive(t *testing.T, k kubectl, container string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, "--kubeconfig", k.kubeconfig, "debug", "rc-ok", "-i", "--image=busybox",
		"--target=app", "--container="+container, "--", "sh")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 1)
	go func() {
		var seen strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "hello-from-debug") {
				answered <- seen.String()
				io.Copy(io.Discard, pr)
				return
			}
		}
		answered <- seen.String()
	}()
	io.WriteString(stdin, "echo hello-from-debug\n")
	select {
	case out := <-answered:
		if !strings.Contains(out, "hello-from-debug") {
			t.Errorf("kubectl %s debug -i ended without the shell's answer:\n%s", k.bin, out)
		}
	case <-ctx.Done():
		t.Errorf("kubectl %s debug -i: no answer from the debug shell", k.bin)
	}
	io.WriteString(stdin, "exit\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil && ctx.Err() == nil {
		t.Errorf("kubectl %s debug -i: %v", k.bin, err)
	}
	pw.Close()
}
