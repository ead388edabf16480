package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upgradeFrom is the last commit before identity and access: a data dir it
// made has no default RBAC policy, no service-account key and an etcd that
// listened on loopback TCP.
const upgradeFrom = "9e018c4"

// buildOldSkiff builds skiff at commit from a worktree of this repository,
// or skips when the history is not there (a shallow clone).
func buildOldSkiff(t *testing.T, commit string) string {
	t.Helper()
	if err := exec.Command("git", "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Skipf("commit %s is not in this clone's history", commit)
	}
	tree := filepath.Join(t.TempDir(), "old")
	if out, err := exec.Command("git", "worktree", "add", "--detach", tree, commit).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("git", "worktree", "remove", "--force", tree).Run() })
	bin := filepath.Join(t.TempDir(), "skiff-old")
	build := exec.Command("go", "build", "-o", bin, "./cmd/skiff")
	build.Dir = tree
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build skiff %s: %v\n%s", commit, err, out)
	}
	return bin
}

// TestUpgradeKeepsDataDir runs a cluster made by the previous release on
// the new binary: it starts, gets the default policy, keeps its node
// credentials and workloads, and its pods get service-account tokens.
func TestUpgradeKeepsDataDir(t *testing.T) {
	requireNodeRuntime(t)
	old := buildOldSkiff(t, upgradeFrom)
	c := startNodeClusterWith(t, old)
	k := c.kubectl()
	k.must("create", "deployment", "keep", "--image=busybox", "--replicas=1", "--", "sleep", "3600")
	k.must("rollout", "status", "deployment/keep", "--timeout=90s")
	// Keep the node credential the old release issued, to prove it still
	// works after the upgrade.
	before, err := os.ReadFile(filepath.Join(c.dataDir, "agent", "kubelet.kubeconfig"))
	if err != nil {
		t.Fatalf("the old agent wrote no node kubeconfig: %v", err)
	}
	nodeKubeconfig := filepath.Join(t.TempDir(), "old-node.kubeconfig")
	if err := os.WriteFile(nodeKubeconfig, before, 0o600); err != nil {
		t.Fatal(err)
	}
	c.stop()

	c.binary = "" // the binary under test
	c.start()
	// The default policy is there and in force.
	contains(t, k.must("get", "clusterrole", "cluster-admin", "view", "system:node", "-o", "name"),
		"clusterrole.rbac.authorization.k8s.io/cluster-admin", "clusterrole.rbac.authorization.k8s.io/view")
	node := kubectl{t: t, bin: k.bin, kubeconfig: nodeKubeconfig}
	contains(t, node.must("get", "node", c.node, "-o", "name"), "node/"+c.node)
	if out, err := node.run("", "delete", "namespace", "default", "--dry-run=server"); err == nil || !strings.Contains(out, "forbidden") {
		t.Errorf("the upgraded node's credential may delete namespaces: %v\n%s", err, out)
	}
	// The old workload is still served, and a new pod gets its identity.
	k.must("rollout", "status", "deployment/keep", "--timeout=90s")
	k.must("run", "fresh", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
	waitPod(t, k, "fresh", 90*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
	out := k.must("exec", "fresh", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if strings.TrimSpace(out) != "default" {
		t.Errorf("namespace file in an upgraded cluster's pod = %q, want default", out)
	}
}
