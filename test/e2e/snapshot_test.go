package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEtcdSnapshotRestore saves a snapshot of a running server and
// restores it into a new data dir: every object comes back.
func TestEtcdSnapshotRestore(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	k := kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: s.kubeconfig}
	k.must("create", "namespace", "backup")
	k.must("create", "configmap", "settings", "-n", "backup", "--from-literal=color=blue")
	k.must("create", "deployment", "web", "-n", "backup", "--image=busybox", "--replicas=3")
	k.must("delete", "configmap", "kube-root-ca.crt", "-n", "backup", "--ignore-not-found")

	file := filepath.Join(t.TempDir(), "snap.db")
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "save", "--data-dir", s.dataDir, file).CombinedOutput(); err != nil {
		t.Fatalf("save: %v\n%s", err, out)
	}
	s.stop()

	restored := t.TempDir()
	out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", file, "--data-dir", restored).CombinedOutput()
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := exec.Command(skiffBin(t), "etcd-snapshot", "restore", file, "--data-dir", restored).CombinedOutput(); err == nil {
		t.Errorf("restoring over existing data succeeded: %s", out)
	}
	r := startServer(t, restored)
	k2 := kubectl{t: t, bin: k.bin, kubeconfig: r.kubeconfig}
	if got := k2.must("get", "configmap", "settings", "-n", "backup", "-o", "jsonpath={.data.color}"); got != "blue" {
		t.Errorf("restored configmap color = %q", got)
	}
	if got := k2.must("get", "deployment", "web", "-n", "backup", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Errorf("restored deployment replicas = %q", got)
	}
	// The restored cluster keeps working: the deployment's pods are there
	// (pending, no nodes) and new objects can be made.
	k2.must("create", "configmap", "after", "-n", "backup")
	if pods := k2.must("get", "pods", "-n", "backup", "-o", "name"); strings.Count(pods, "pod/") != 3 {
		t.Errorf("pods after restore:\n%s", pods)
	}
}
