package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (hack/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	var clients, peers []string
	for i := 0; i < 3; i++ {
		clients = append(clients, "http://127.0.0.1:"+strconv.Itoa(freePort(t)))
		peers = append(peers, fmt.Sprintf("e%d=http://127.0.0.1:%d", i, freePort(t)))
	}
	for i := 0; i < 3; i++ {
		peerURL := strings.SplitN(peers[i], "=", 2)[1]
		cmd := exec.Command(etcdBin, "--data-dir", filepath.Join(dir, fmt.Sprintf("etcd%d", i)), "--name", fmt.Sprintf("e%d", i),
			"--listen-client-urls", clients[i], "--advertise-client-urls", clients[i],
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new")
		cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+goarch())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	etcdFlag := strings.Join(clients, ",")

	servers := []*server{startServer(t, filepath.Join(dir, "s0"), "--etcd-servers", etcdFlag)}
	// The servers of one cluster share its CA and credentials.
	for i := 1; i < 3; i++ {
		d := filepath.Join(dir, fmt.Sprintf("s%d", i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-r", filepath.Join(dir, "s0", "pki"), filepath.Join(d, "pki")).CombinedOutput(); err != nil {
			t.Fatalf("copy pki: %v %s", err, out)
		}
		servers = append(servers, startServer(t, d, "--etcd-servers", etcdFlag))
	}
	bin := kubectlBin(t, "1.33")
	k := func(s *server) kubectl { return kubectl{t: t, bin: bin, kubeconfig: s.kubeconfig} }
	// Every server answers, and sees what another wrote.
	k(servers[0]).must("create", "configmap", "shared", "--from-literal=from=s0")
	for _, s := range servers {
		if got := k(s).must("get", "configmap", "shared", "-o", "jsonpath={.data.from}"); got != "s0" {
			t.Fatalf("server %s sees %q", s.dataDir, got)
		}
	}

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
	for k(survivor).must("get", "pod", "placed", "-o", "jsonpath={.spec.nodeName}") != "worker-1" {
		if time.Now().After(deadline) {
			t.Fatalf("no server took over scheduling after the leader died")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("scheduling resumed %s after the leader was killed", time.Since(killedAt).Round(100*time.Millisecond))
}
