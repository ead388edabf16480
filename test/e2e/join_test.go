package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJoinNodeWithToken joins a second node with a bootstrap token (CSR
// approved and signed by the server), runs a pod on it, refuses bad join
// input with clear errors, and drains the node through the eviction API
// while a PodDisruptionBudget holds it back.
func TestJoinNodeWithToken(t *testing.T) {
	c := startNodeCluster(t, "--cni-bridge", "skiffe2e4", "--cluster-cidr", "10.74.0.0/16", "--dns-port", strconv.Itoa(freePort(t)))
	k := c.kubectl()

	out, err := exec.Command(skiffBin(t), "token", "create", "--data-dir", c.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	token := regexp.MustCompile(`(?m)^[a-z0-9]{6}\.[a-z0-9]{16}$`).FindString(string(out))
	server := regexp.MustCompile(`--server (\S+)`).FindStringSubmatch(string(out))
	hash := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(string(out))
	if token == "" || server == nil || hash == "" {
		t.Fatalf("token create printed:\n%s", out)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Bad input: one-line errors, non-zero exit, nothing left running.
	badToken := filepath.Join(dir, "bad")
	if err := os.WriteFile(badToken, []byte("abcdef.0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", server[1], "--token-file", tokenFile}, "without --ca-cert-hash"},
		{[]string{"--server", server[1], "--token-file", badToken, "--ca-cert-hash", hash}, "the token is unknown"},
		{[]string{"--server", server[1], "--token-file", tokenFile, "--ca-cert-hash", "sha256:" + strings.Repeat("0", 64)}, "CA hash"},
		{[]string{"--server", "https://127.0.0.1:1", "--token-file", tokenFile, "--ca-cert-hash", hash}, "does not answer"},
	} {
		args := append([]string{"agent", "--data-dir", filepath.Join(dir, "bad-agent"), "--node-name", "bad"}, tc.args...)
		out, err := exec.Command(skiffBin(t), args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("agent %v: %v\n%s", tc.args, err, out)
		}
	}

	agentDir, err := os.MkdirTemp("", "skiff-e2e-agent")
	if err != nil {
		t.Fatal(err)
	}
	agent := &process{t: t, name: "skiff agent", args: []string{"agent", "--data-dir", agentDir, "--node-name", "e2e-node2",
		"--server", server[1], "--token-file", tokenFile, "--ca-cert-hash", hash,
		"--kubelet-port", strconv.Itoa(freePort(t)), "--cni-bridge", "skiffe2e5", "--disable-proxy", "--disable-dns",
		"--pod-log-dir", filepath.Join(agentDir, "log"), "--images-dir", testImages(t)}}
	t.Cleanup(func() {
		agent.terminate(60 * time.Second)
		_ = exec.Command(skiffBin(t), "killall", "--data-dir", agentDir).Run()
		os.RemoveAll(agentDir)
	})
	agent.launch(90*time.Second, func() error {
		return nodeReady(k, "e2e-node2")
	})
	if out := k.must("get", "csr", "--no-headers"); !strings.Contains(out, "Approved,Issued") || !strings.Contains(out, "system:bootstrap:") {
		t.Errorf("certificate requests:\n%s", out)
	}

	k.must("run", "remote", "--image=busybox", `--overrides={"spec":{"nodeName":"e2e-node2"}}`, "--", "sh", "-c", "echo on-node2; sleep 3600")
	waitPod(t, k, "remote", 60*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := k.run("", "logs", "remote")
		if err == nil && strings.TrimSpace(out) == "on-node2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs of a pod on the joined node: %v %q", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Drain: blocked by a budget that needs the pod, then allowed.
	applyYAML(k, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: guarded}
spec:
  replicas: 1
  selector: {matchLabels: {app: guarded}}
  template:
    metadata: {labels: {app: guarded}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {kubernetes.io/hostname: e2e-node2}
      containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: guarded}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: guarded}}
`)
	k.must("rollout", "status", "deployment/guarded", "--timeout=60s")
	k.must("delete", "pod", "remote", "--grace-period=1")
	drainOut, err := k.run("", "drain", "e2e-node2", "--ignore-daemonsets", "--timeout=5s")
	if err == nil || !strings.Contains(drainOut, "disruption budget") {
		t.Errorf("drain should be held back by the budget: %v\n%s", err, drainOut)
	}
	if got := k.must("get", "node", "e2e-node2", "-o", "jsonpath={.spec.unschedulable}"); got != "true" {
		t.Errorf("drained node not cordoned: %q", got)
	}
	k.must("delete", "pdb", "guarded")
	k.must("drain", "e2e-node2", "--ignore-daemonsets", "--timeout=60s")
	if out := k.must("get", "pods", "-l", "app=guarded", "--field-selector", "spec.nodeName=e2e-node2", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("pods left on the drained node: %s", out)
	}
	k.must("uncordon", "e2e-node2")

	// A restart close to the certificate's expiry renews it, as the node.
	before, err := os.ReadFile(filepath.Join(agentDir, "kubelet.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	agent.terminate(60 * time.Second)
	agent.args = append(agent.args, "--renew-certificate-before", "9000h") // longer than the 1-year certificate
	agent.launch(90*time.Second, func() error {
		out, err := os.ReadFile(filepath.Join(agentDir, "kubelet.kubeconfig"))
		if err == nil && string(out) == string(before) {
			err = errors.New("the node's kubeconfig is not renewed yet")
		}
		return err
	})
	if out := k.must("get", "csr", "--no-headers"); !regexp.MustCompile(`system:node:e2e-node2\s+\S+\s+Approved,Issued`).MatchString(out) {
		t.Errorf("no renewal request by the node itself:\n%s", out)
	}
	after, err := os.ReadFile(filepath.Join(agentDir, "kubelet.kubeconfig"))
	if err != nil || string(after) == string(before) {
		t.Errorf("the node's kubeconfig was not renewed (%v)", err)
	}
	waitFor(t, func() bool {
		out, err := k.run("", "get", "node", "e2e-node2", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && out == "True"
	}, "node Ready with its renewed certificate")
}
