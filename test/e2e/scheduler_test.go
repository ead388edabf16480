package e2e

import (
	"strings"
	"testing"
	"time"
)

const schedulerManifest = `apiVersion: v1
kind: Node
metadata:
  name: worker-1
  labels:
    kubernetes.io/hostname: worker-1
status:
  capacity: {cpu: "2", memory: 4Gi, pods: "110"}
  allocatable: {cpu: "2", memory: 4Gi, pods: "110"}
  conditions:
  - type: Ready
    status: "True"
---
apiVersion: v1
kind: Pod
metadata:
  name: placed
  namespace: default
spec:
  containers:
  - name: c
    image: busybox:1.35
    resources:
      requests: {cpu: 500m}
`

// TestSchedulerThroughKubectl: the built-in scheduler binds pods, honours
// cordon, and explains a pending pod in kubectl describe.
func TestSchedulerThroughKubectl(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	k := kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: s.kubeconfig}
	k.mustStdin(schedulerManifest, "apply", "-f", "-")
	waitFor(t, func() bool {
		return k.must("get", "pod", "placed", "-o", "jsonpath={.spec.nodeName}") == "worker-1"
	}, "pod placed on worker-1")
	contains(t, k.must("get", "pod", "placed", "-o", "wide"), "worker-1")

	k.must("cordon", "worker-1")
	k.must("run", "waiting", "--image=busybox:1.35", "--restart=Never")
	waitFor(t, func() bool {
		out := k.must("describe", "pod", "waiting")
		return strings.Contains(out, "FailedScheduling") && strings.Contains(out, "0/1 nodes are available: 1 node(s) were unschedulable.")
	}, "FailedScheduling event in describe")
	k.must("uncordon", "worker-1")
	waitFor(t, func() bool {
		return k.must("get", "pod", "waiting", "-o", "jsonpath={.spec.nodeName}") == "worker-1"
	}, "pod placed after uncordon")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
