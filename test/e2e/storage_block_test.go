package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// blockPVYAML is a local PersistentVolume in Block mode on a device of the
// node, and a claim bound to it by class.
const blockPVYAML = `apiVersion: v1
kind: PersistentVolume
metadata:
  name: block-pv
spec:
  capacity: {storage: 16Mi}
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: block-local
  local: {path: DEVICE}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [NODE]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: block
spec:
  storageClassName: block-local
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
`

// blockPod runs cmd with the claim "block" as the device /dev/xvda, or,
// with mount set, (wrongly) mounted at /data.
func blockPod(name, cmd string, mount bool) string {
	use := `    volumeDevices:
    - {name: d, devicePath: /dev/xvda}
`
	if mount {
		use = `    volumeMounts:
    - {name: d, mountPath: /data}
`
	}
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
` + use + `  volumes:
  - name: d
    persistentVolumeClaim: {claimName: block}
`
}

// TestBlockVolume is issue 16's raw block bar: a claim in volumeMode Block
// bound to a local volume on a loop device reaches the container as a
// device, what the pod writes on it lands in the device's backing file,
// and mounting the claim as a filesystem fails with upstream's message.
func TestBlockVolume(t *testing.T) {
	requireNodeRuntime(t)
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not installed")
	}
	backing := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(backing, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", backing).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	t.Logf("backing file on %s", dev)

	c := startNodeCluster(t)
	k := c.kubectl()
	applyYAML(k, strings.NewReplacer("DEVICE", dev, "NODE", c.node).Replace(blockPVYAML))
	waitFor(t, func() bool { return k.must("get", "pvc", "block", "-o", "jsonpath={.status.phase}") == "Bound" }, "block claim Bound")

	const marker = "skiff-raw-block-marker"
	// Written 4 KiB in, read back the same way: a device, not a file.
	cmd := "test -b /dev/xvda || { echo not a block device; exit 1; }; " +
		"printf " + marker + " | dd of=/dev/xvda bs=512 seek=8 conv=fsync && " +
		"dd if=/dev/xvda bs=512 skip=8 count=1 2>/dev/null | head -c " + strconv.Itoa(len(marker)) + "; echo"
	applyYAML(k, blockPod("writer", cmd, false))
	writer := waitPod(t, k, "writer", 90*time.Second, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
	contains(t, k.must("logs", "writer"), marker)

	data, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data[4096:4096+len(marker)], []byte(marker)) {
		t.Fatalf("backing file at 4096 holds %q, want %q", data[4096:4096+len(marker)], marker)
	}
	// As upstream, the pod's directory links the device it maps.
	link := filepath.Join(c.dataDir, "agent", "kubelet", "pods", writer.Metadata.UID, "volumeDevices", "kubernetes.io~local-volume", "block-pv")
	if target, err := os.Readlink(link); err != nil || target != dev {
		t.Errorf("%s -> %q, %v; want %s", link, target, err, dev)
	}

	// The Block claim in volumeMounts: the pod never starts.
	applyYAML(k, blockPod("mounter", "true", true))
	waitFor(t, func() bool {
		ev := k.must("get", "events", "--field-selector", "involvedObject.name=mounter,reason=FailedMount", "-o", "jsonpath={.items[*].message}")
		return strings.Contains(ev, "volume d has volumeMode Block, but is specified in volumeMounts")
	}, "FailedMount event for the Block claim in volumeMounts")
	if phase := k.must("get", "pod", "mounter", "-o", "jsonpath={.status.phase}"); phase != "Pending" {
		t.Fatalf("mounter %s, want Pending", phase)
	}
}
