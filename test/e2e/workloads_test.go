package e2e

import (
	"strings"
	"testing"
)

const statefulManifest = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: busybox:1.35
`

// TestJobAndStatefulSetThroughKubectl: kubectl wait sees a job complete,
// and a stateful set comes up in order.
func TestJobAndStatefulSetThroughKubectl(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	k := kubectl{t: t, bin: kubectlBin(t, "1.33"), kubeconfig: s.kubeconfig}

	k.must("create", "job", "once", "--image=busybox:1.35", "--", "true")
	waitFor(t, func() bool {
		names := strings.Fields(k.must("get", "pods", "-l", "job-name=once", "-o", "jsonpath={.items[*].metadata.name}"))
		for _, n := range names {
			_, _ = k.run("", "patch", "pod", n, "--subresource=status", "--type=merge", "-p", `{"status":{"phase":"Succeeded"}}`)
		}
		return len(names) > 0
	}, "job pod")
	k.must("wait", "--for=condition=complete", "job/once", "--timeout=30s")
	contains(t, k.must("get", "job", "once"), "Complete", "1/1")

	k.mustStdin(statefulManifest, "apply", "-f", "-")
	waitFor(t, func() bool {
		markReadyPods(k, "app=db")
		return k.must("get", "sts", "db", "-o", "jsonpath={.status.readyReplicas}") == "2"
	}, "stateful set ready")
	contains(t, k.must("get", "pods", "-l", "app=db", "-o", "name"), "pod/db-0", "pod/db-1")
	k.must("rollout", "status", "statefulset/db", "--timeout=10s")
}

// markReadyPods does what a kubelet would: reports the selected pending
// pods Running and Ready.
func markReadyPods(k kubectl, selector string) {
	k.t.Helper()
	names := strings.Fields(k.must("get", "pods", "-l", selector, "-o", "jsonpath={range .items[?(@.status.phase=='Pending')]}{.metadata.name} {end}"))
	for _, n := range names {
		_, _ = k.run("", "patch", "pod", n, "--subresource=status", "--type=merge",
			"-p", `{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}`)
	}
}
