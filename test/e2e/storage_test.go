package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// claimPod is a pod that runs cmd with claim mounted at /data.
func claimPod(name, claim, cmd string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", ` + strconv.Quote(cmd) + `]
    volumeMounts:
    - {name: d, mountPath: /data}
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: ` + claim + `}
`
}

const claimYAML = `apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: NAME
spec:
  CLASS
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
`

func claimManifest(name, classLine string) string {
	return strings.NewReplacer("NAME", name, "CLASS", classLine).Replace(claimYAML)
}

const storageStatefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: st
spec:
  replicas: 2
  serviceName: st
  selector:
    matchLabels: {app: st}
  template:
    metadata:
      labels: {app: st}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "[ -f /data/who ] || hostname > /data/who; sleep 3600"]
        volumeMounts:
        - {name: d, mountPath: /data}
  volumeClaimTemplates:
  - metadata: {name: d}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 32Mi}}
`

// TestPersistentStorage is issue 16's bar on a real node: claims on the
// default local-path class bind when their pod is scheduled, data outlives
// pods, StatefulSet claims follow their ordinals, deleting a claim deletes
// its data, and a claim of an unknown class leaves its pod Pending.
func TestPersistentStorage(t *testing.T) {
	c := startNodeCluster(t)
	k := c.kubectl()

	waitFor(t, func() bool {
		out, err := k.run("", "get", "storageclass", "local-path", "-o", `jsonpath={.metadata.annotations.storageclass\.kubernetes\.io/is-default-class} {.volumeBindingMode}`)
		return err == nil && out == "true WaitForFirstConsumer"
	}, "default StorageClass local-path")
	storageDir := k.must("get", "node", c.node, "-o", `jsonpath={.metadata.annotations.skiff\.dev/local-path-dir}`)
	if storageDir == "" {
		storageDir = "/var/lib/skiff/storage"
	}

	t.Run("claim binds with its first pod and keeps data across pods", func(t *testing.T) {
		applyYAML(k, claimManifest("data", ""))
		if phase := k.must("get", "pvc", "data", "-o", "jsonpath={.status.phase}"); phase == "Bound" {
			t.Fatalf("claim %s before any pod (WaitForFirstConsumer keeps it Pending)", phase)
		}
		start := time.Now()
		applyYAML(k, claimPod("writer", "data", "echo hello-from-writer > /data/file"))
		waitFor(t, func() bool { return k.must("get", "pvc", "data", "-o", "jsonpath={.status.phase}") == "Bound" }, "claim Bound")
		t.Logf("claim Bound %v after its pod's creation", time.Since(start).Round(time.Millisecond))
		waitPod(t, k, "writer", 90*time.Second, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
		k.must("delete", "pod", "writer", "--wait=true")

		applyYAML(k, claimPod("reader", "data", "cat /data/file"))
		waitPod(t, k, "reader", 90*time.Second, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
		contains(t, k.must("logs", "reader"), "hello-from-writer")

		pv := k.must("get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}")
		dir := k.must("get", "pv", pv, "-o", "jsonpath={.spec.hostPath.path}")
		if !strings.HasPrefix(dir, storageDir+"/") {
			t.Fatalf("volume path %q is not under the node's storage dir %q", dir, storageDir)
		}
		if _, err := os.Stat(filepath.Join(dir, "file")); err != nil {
			t.Fatalf("data not on the node's disk: %v", err)
		}

		// Deleting the claim deletes the data (a helper pod on the node),
		// then the volume.
		k.must("delete", "pod", "reader", "--wait=true")
		k.must("delete", "pvc", "data", "--wait=true")
		waitFor(t, func() bool {
			_, err := k.run("", "get", "pv", pv)
			_, statErr := os.Stat(dir)
			return err != nil && os.IsNotExist(statErr)
		}, "volume and its directory deleted")
	})

	t.Run("StatefulSet claims follow their ordinals", func(t *testing.T) {
		applyYAML(k, storageStatefulSet)
		ready := func() bool { return k.must("get", "sts", "st", "-o", "jsonpath={.status.readyReplicas}") == "2" }
		waitFor(t, ready, "stateful set ready")
		contains(t, k.must("get", "pvc", "-o", "name"), "persistentvolumeclaim/d-st-0", "persistentvolumeclaim/d-st-1")
		for _, ord := range []string{"0", "1"} {
			contains(t, k.must("exec", "st-"+ord, "--", "cat", "/data/who"), "st-"+ord)
		}
		vol0 := k.must("get", "pvc", "d-st-0", "-o", "jsonpath={.spec.volumeName}")
		k.must("delete", "pod", "st-0", "st-1", "--wait=true")
		waitFor(t, ready, "stateful set ready again")
		for _, ord := range []string{"0", "1"} {
			contains(t, k.must("exec", "st-"+ord, "--", "cat", "/data/who"), "st-"+ord)
		}
		if got := k.must("get", "pvc", "d-st-0", "-o", "jsonpath={.spec.volumeName}"); got != vol0 {
			t.Fatalf("d-st-0 moved from %s to %s", vol0, got)
		}
	})

	t.Run("unknown class leaves the pod Pending with an event", func(t *testing.T) {
		applyYAML(k, claimManifest("nowhere", "storageClassName: no-such-class"))
		applyYAML(k, claimPod("stuck", "nowhere", "true"))
		waitFor(t, func() bool {
			ev := k.must("get", "events", "--field-selector", "involvedObject.name=nowhere", "-o", "jsonpath={.items[*].message}")
			return strings.Contains(ev, `storageclass.storage.k8s.io "no-such-class" not found`)
		}, "ProvisioningFailed event on the claim")
		waitFor(t, func() bool {
			ev := k.must("get", "events", "--field-selector", "involvedObject.name=stuck", "-o", "jsonpath={.items[*].reason}")
			return strings.Contains(ev, "FailedScheduling")
		}, "FailedScheduling event on the pod")
		if phase := k.must("get", "pod", "stuck", "-o", "jsonpath={.status.phase}"); phase != "Pending" {
			t.Fatalf("pod %s, want Pending", phase)
		}
	})
}
