package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSeveralServersOneEtcdCluster runs three skiff servers (sharing one
// PKI) against a three-member etcd cluster: each answers the API, one
// leads the scheduler, and when that one dies another takes over and pods
// keep being scheduled.
func TestSeveralServersOneEtcdCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, servers := startThreeServers(t, dir)
	bin := kubectlBin(t, "1.33")
	k := func(s *server) kubectl { return kubectl{t: t, bin: bin, kubeconfig: s.kubeconfig} }
	// Every server answers, and sees what another wrote.
	k(servers[0]).must("create", "configmap", "shared", "--from-literal=from=s0")
	for _, s := range servers {
		if got := k(s).must("get", "configmap", "shared", "-o", "jsonpath={.data.from}"); got != "s0" {
			t.Fatalf("server %s sees %q", s.dataDir, got)
		}
	}

	// A node agent given every server's address.
	requireNodeRuntime(t)
	out, err := exec.Command(skiffBin(t), "token", "create", "--data-dir", servers[0].dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])), 0o600); err != nil {
		t.Fatal(err)
	}
	hash := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(string(out))
	if hash == "" {
		t.Fatalf("token create printed no CA hash:\n%s", out)
	}
	var urls []string
	for _, s := range servers {
		urls = append(urls, strings.TrimSpace(k(s).must("config", "view", "-o", "jsonpath={.clusters[0].cluster.server}")))
	}
	agentDir, err := os.MkdirTemp("", "skiff-ha-agent")
	if err != nil {
		t.Fatal(err)
	}
	agent := &process{t: t, name: "skiff agent", args: []string{"agent", "--data-dir", agentDir, "--node-name", "ha-node",
		"--server", strings.Join(urls, ","), "--token-file", tokenFile, "--ca-cert-hash", hash, "--kubelet-port", strconv.Itoa(freePort(t)),
		"--cni-bridge", "skiffe2e7", "--cluster-cidr", "10.70.0.0/16", "--disable-proxy", "--disable-dns", "--disable-ingress",
		"--pod-log-dir", filepath.Join(agentDir, "log"), "--images-dir", testImages(t)}}
	t.Cleanup(func() {
		agent.terminate(60 * time.Second)
		_ = exec.Command(skiffBin(t), "killall", "--data-dir", agentDir).Run()
		os.RemoveAll(agentDir)
	})
	agent.launch(90*time.Second, func() error {
		return nodeReady(k(servers[1]), "ha-node")
	})

	leader := -1
	deadline := time.Now().Add(30 * time.Second)
	for leader < 0 && time.Now().Before(deadline) {
		for i, s := range servers {
			if strings.Contains(s.logs.String(), `msg="became leader" lease=kube-scheduler`) {
				leader = i
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if leader < 0 {
		t.Fatal("no server became the scheduler leader")
	}
	servers[leader].kill()
	survivor := servers[(leader+1)%3]
	killedAt := time.Now()
	k(survivor).mustStdin(schedulerManifest, "apply", "-f", "-")
	deadline = time.Now().Add(60 * time.Second)
	// Scheduled anywhere (worker-1 or the agent's node) proves a scheduler runs.
	for k(survivor).must("get", "pod", "placed", "-o", "jsonpath={.spec.nodeName}") == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no server took over scheduling after the leader died")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("scheduling resumed %s after the leader was killed", time.Since(killedAt).Round(100*time.Millisecond))

	// Lose the agent's first server too: it fails over to the last one.
	servers[0].kill()
	last := survivor
	if last == servers[0] {
		last = servers[(leader+2)%3]
	}
	for i, s := range servers {
		if s.cmd != nil && s != last {
			servers[i].kill()
		}
	}
	k(last).must("run", "after-failover", "--image=busybox", `--overrides={"spec":{"nodeName":"ha-node"}}`, "--", "sleep", "3600")
	deadline = time.Now().Add(60 * time.Second)
	for k(last).must("get", "pod", "after-failover", "-o", "jsonpath={.status.phase}") != "Running" {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not run a pod after failing over to the last server; agent logs:\n%s", agent.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
