package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// csiDriverName is the name test/images/csi's driver reports.
const csiDriverName = "csi.skiff.test"

// csiDeployment is what a user deploys for a CSI driver on Skiff: a
// ServiceAccount with upstream external-attacher's and
// external-provisioner's RBAC, the CSIDriver object and a DaemonSet of the
// driver (test/images/csi/cmd/testdriver), a registrar (a stand-in for
// node-driver-registrar) and upstream's external-attacher and
// external-provisioner, built unchanged from their modules. KUBELET is the
// node's kubelet data dir and STATE the driver's state dir on the host.
const csiDeployment = `apiVersion: v1
kind: Namespace
metadata: {name: csi-test}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: csi-testdriver, namespace: csi-test}
---
# upstream external-attacher's deploy/kubernetes/rbac.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: csi-test-external-attacher-runner}
rules:
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["storage.k8s.io"]
  resources: ["csinodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["storage.k8s.io"]
  resources: ["volumeattachments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["storage.k8s.io"]
  resources: ["volumeattachments/status"]
  verbs: ["patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: csi-test-attacher}
subjects:
- {kind: ServiceAccount, name: csi-testdriver, namespace: csi-test}
roleRef: {kind: ClusterRole, name: csi-test-external-attacher-runner, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: external-attacher-cfg, namespace: csi-test}
rules:
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "watch", "list", "delete", "update", "create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: csi-attacher-cfg, namespace: csi-test}
subjects:
- {kind: ServiceAccount, name: csi-testdriver, namespace: csi-test}
roleRef: {kind: Role, name: external-attacher-cfg, apiGroup: rbac.authorization.k8s.io}
---
# upstream external-provisioner's deploy/kubernetes/rbac.yaml (no leases:
# it runs with --leader-election=false)
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: csi-test-external-provisioner-runner}
rules:
- apiGroups: [""]
  resources: ["persistentvolumes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "update"]
- apiGroups: ["storage.k8s.io"]
  resources: ["storageclasses"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list", "watch", "create", "update", "patch"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshots"]
  verbs: ["get", "list", "watch", "update"]
- apiGroups: ["snapshot.storage.k8s.io"]
  resources: ["volumesnapshotcontents"]
  verbs: ["get", "list"]
- apiGroups: ["storage.k8s.io"]
  resources: ["csinodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["storage.k8s.io"]
  resources: ["volumeattachments"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: csi-test-provisioner}
subjects:
- {kind: ServiceAccount, name: csi-testdriver, namespace: csi-test}
roleRef: {kind: ClusterRole, name: csi-test-external-provisioner-runner, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: csi.skiff.test
  # The csi-provisioner sidecar below provisions, not Skiff's built-in one.
  annotations: {skiff.dev/csi-provisioner: external}
spec:
  attachRequired: true
  podInfoOnMount: false
  volumeLifecycleModes: [Persistent]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: csi-testdriver, namespace: csi-test}
spec:
  selector:
    matchLabels: {app: csi-testdriver}
  template:
    metadata:
      labels: {app: csi-testdriver}
    spec:
      serviceAccountName: csi-testdriver
      terminationGracePeriodSeconds: 2
      containers:
      - name: driver
        image: skiff.test/csi-testdriver:latest
        imagePullPolicy: IfNotPresent
        args: ["-endpoint=unix:///csi/csi.sock", "-state-dir=/state", "-node-id=$(NODE_NAME)", "-capacity=1073741824"]
        env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        securityContext: {privileged: true}
        volumeMounts:
        - {name: socket-dir, mountPath: /csi}
        - {name: state, mountPath: /state}
        # The kubelet passes host paths: mounted at the same paths, and
        # the driver's mounts must reach the host.
        - {name: pods, mountPath: KUBELET/pods, mountPropagation: Bidirectional}
        - {name: plugins, mountPath: KUBELET/plugins, mountPropagation: Bidirectional}
      - name: registrar
        image: skiff.test/csi-registrar:latest
        imagePullPolicy: IfNotPresent
        args: ["-csi-address=/csi/csi.sock", "-kubelet-registration-path=KUBELET/plugins/csi.skiff.test/csi.sock", "-registration-dir=/registration"]
        volumeMounts:
        - {name: socket-dir, mountPath: /csi}
        - {name: registration, mountPath: /registration}
      - name: attacher
        image: skiff.test/csi-attacher:latest
        imagePullPolicy: IfNotPresent
        args: ["--csi-address=/csi/csi.sock", "--v=4"]
        volumeMounts:
        - {name: socket-dir, mountPath: /csi}
      - name: provisioner
        image: skiff.test/csi-provisioner:latest
        imagePullPolicy: IfNotPresent
        # The driver reports topology (NodeGetInfo and the
        # VOLUME_ACCESSIBILITY_CONSTRAINTS capability).
        args: ["--csi-address=/csi/csi.sock", "--leader-election=false", "--feature-gates=Topology=true", "--v=4"]
        volumeMounts:
        - {name: socket-dir, mountPath: /csi}
      volumes:
      - name: socket-dir
        hostPath: {path: KUBELET/plugins/csi.skiff.test, type: DirectoryOrCreate}
      - name: registration
        hostPath: {path: KUBELET/plugins_registry, type: DirectoryOrCreate}
      - name: pods
        hostPath: {path: KUBELET/pods, type: DirectoryOrCreate}
      - name: plugins
        hostPath: {path: KUBELET/plugins, type: DirectoryOrCreate}
      - name: state
        hostPath: {path: STATE, type: DirectoryOrCreate}
`

// csiStaticVolume is a pre-provisioned volume of the driver (its
// directory made by the test, as an admin would), a claim bound to it by
// name and a pod that writes to it.
const csiStaticVolume = `apiVersion: v1
kind: PersistentVolume
metadata: {name: csi-static}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  csi: {driver: csi.skiff.test, volumeHandle: static-vol}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: csi-static, namespace: csi-test}
spec:
  storageClassName: ""
  volumeName: csi-static
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: csi-writer, namespace: csi-test}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello-from-csi > /data/hello && sleep 3600"]
    volumeMounts:
    - {name: d, mountPath: /data}
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: csi-static}
`

// csiDynamicVolume is a StorageClass of the driver, binding when a pod
// needs it and deleting its volumes with their claims, a claim of it and
// a pod that writes to it.
const csiDynamicVolume = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: csi-dynamic}
provisioner: csi.skiff.test
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: csi-dynamic, namespace: csi-test}
spec:
  storageClassName: csi-dynamic
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: csi-dynamic-writer, namespace: csi-test}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello-from-dynamic > /data/hello && sleep 3600"]
    volumeMounts:
    - {name: d, mountPath: /data}
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: csi-dynamic}
`

// csiBlockVolume is a raw block claim of the driver's class and a pod
// that writes a marker to the device and reads it back.
const csiBlockVolume = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: csi-block, namespace: csi-test}
spec:
  storageClassName: csi-dynamic
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: csi-block-user, namespace: csi-test}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "test -b /dev/xvda && echo hello-block | dd of=/dev/xvda bs=512 conv=sync,fsync 2>/dev/null && dd if=/dev/xvda bs=512 count=1 2>/dev/null | head -c 11"]
    volumeDevices:
    - {name: d, devicePath: /dev/xvda}
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: csi-block}
`

// csiCloneSource is a claim of the driver's class and a pod that writes a
// file into it; csiClone a claim cloned from it and a pod that reads it.
const csiCloneSource = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: csi-src, namespace: csi-test}
spec:
  storageClassName: csi-dynamic
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: csi-src-writer, namespace: csi-test}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello-clone > /data/hello"]
    volumeMounts:
    - {name: d, mountPath: /data}
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: csi-src}
`

const csiClone = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: csi-clone, namespace: csi-test}
spec:
  storageClassName: csi-dynamic
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 32Mi}}
  dataSource: {kind: PersistentVolumeClaim, name: csi-src}
---
apiVersion: v1
kind: Pod
metadata: {name: csi-clone-reader, namespace: csi-test}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["cat", "/data/hello"]
    volumeMounts:
    - {name: d, mountPath: /data}
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: csi-clone}
`

// TestCSIDriver is issue 16's proof with drivers nobody here wrote... as
// far as the module proxy allows: a CSI driver deployed the way upstream
// drivers are, registered through plugins_registry, its volume attached
// by upstream's external-attacher running against Skiff's API unchanged,
// staged and published by the kubelet for a pod, then unpublished,
// unstaged and detached when the pod goes; and a volume dynamically
// provisioned by upstream's external-provisioner for a pod's claim, then
// deleted with the claim.
func TestCSIDriver(t *testing.T) {
	c := startNodeCluster(t)
	k := c.kubectl()
	ns := k
	ns.kubeconfig = derivedKubeconfig(t, c.kubeconfig, "csi-test", false)

	kubeletDir := filepath.Join(c.dataDir, "agent", "kubelet")
	stateDir := filepath.Join(c.dataDir, "csi-state")
	volumeDir := filepath.Join(stateDir, "volumes", "static-vol")
	if err := os.MkdirAll(volumeDir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpCSIState(t, k)
		}
	})
	applyYAML(k, strings.NewReplacer("KUBELET", kubeletDir, "STATE", stateDir).Replace(csiDeployment))

	t.Run("driver registers and appears in CSINode", func(t *testing.T) {
		waitUntil(t, 2*time.Minute, "CSINode entry of "+csiDriverName, func() bool {
			out, _ := k.run("", "get", "csinode", c.node, "-o",
				`jsonpath={.spec.drivers[?(@.name=="csi.skiff.test")].nodeID} {.spec.drivers[?(@.name=="csi.skiff.test")].topologyKeys}`)
			return out == c.node+` ["topology.csi.skiff.test/node"]`
		})
		contains(t, k.must("get", "node", c.node, "-o", "jsonpath={.metadata.labels}"), `"topology.csi.skiff.test/node":"`+c.node+`"`)
	})
	if t.Failed() {
		return
	}

	vaName := "csi-" + sha256Hex("static-vol"+csiDriverName+c.node)
	var target string
	t.Run("volume is attached by external-attacher and published for the pod", func(t *testing.T) {
		applyYAML(k, csiStaticVolume)
		waitUntil(t, 30*time.Second, "claim Bound", func() bool {
			return ns.must("get", "pvc", "csi-static", "-o", "jsonpath={.status.phase}") == "Bound"
		})
		waitUntil(t, time.Minute, "VolumeAttachment "+vaName+" attached", func() bool {
			out, _ := k.run("", "get", "volumeattachment", vaName, "-o", "jsonpath={.status.attached}")
			return out == "true"
		})
		got := k.must("get", "volumeattachment", vaName, "-o",
			`jsonpath={.spec.attacher} {.spec.nodeName} {.spec.source.persistentVolumeName} {.status.attachmentMetadata.csi\.skiff\.test/attached-to}`)
		if want := strings.Join([]string{csiDriverName, c.node, "csi-static", c.node}, " "); got != want {
			t.Fatalf("VolumeAttachment: got %q, want %q (attacher node pv publish-context)", got, want)
		}
		// ControllerPublishVolume really ran in the driver.
		if rec, err := os.ReadFile(filepath.Join(stateDir, "attachments", "static-vol")); err != nil || string(rec) != c.node {
			t.Fatalf("driver's attachment record: %q, %v; want %q", rec, err, c.node)
		}
		contains(t, k.must("get", "pv", "csi-static", "-o", "jsonpath={.metadata.finalizers}"), "external-attacher/csi-skiff-test")

		p := waitPod(t, ns, "csi-writer", 2*time.Minute, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
		waitUntil(t, 30*time.Second, "the pod's file in the driver's volume directory", func() bool {
			b, err := os.ReadFile(filepath.Join(volumeDir, "hello"))
			return err == nil && string(b) == "hello-from-csi\n"
		})
		podVolumes := filepath.Join(kubeletDir, "pods", p.Metadata.UID, "volumes", "kubernetes.io~csi")
		targets, _ := filepath.Glob(filepath.Join(podVolumes, "*", "mount"))
		if len(targets) != 1 {
			t.Fatalf("CSI target paths under %s: %v, want one", podVolumes, targets)
		}
		target = targets[0]
		mounts := mountPointsUnder(t, kubeletDir)
		if !mounts[target] {
			t.Fatalf("target %s is not a mount point on the host; mounts under the kubelet dir: %v", target, mounts)
		}
		if staged := stagedMounts(mounts); len(staged) != 1 {
			t.Fatalf("staging mounts of %s: %v, want one", csiDriverName, staged)
		}
		if node := k.must("get", "node", c.node, "-o", "jsonpath={.status.volumesInUse}"); !strings.Contains(node, "kubernetes.io/csi/"+csiDriverName+"^static-vol") {
			t.Fatalf("node volumesInUse %s lacks the volume", node)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("deleting the pod unpublishes, unstages and detaches", func(t *testing.T) {
		ns.must("delete", "pod", "csi-writer", "--wait=true")
		waitUntil(t, 30*time.Second, "target and staging unmounted", func() bool {
			mounts := mountPointsUnder(t, kubeletDir)
			_, err := os.Stat(target)
			return !mounts[target] && os.IsNotExist(err) && len(stagedMounts(mounts)) == 0
		})
		waitUntil(t, 7*time.Minute, "VolumeAttachment "+vaName+" deleted", func() bool {
			_, err := k.run("", "get", "volumeattachment", vaName)
			return err != nil
		})
		if _, err := os.Stat(filepath.Join(stateDir, "attachments", "static-vol")); !os.IsNotExist(err) {
			t.Fatalf("driver still records the attachment (ControllerUnpublishVolume not called): %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(volumeDir, "hello")); err != nil || string(b) != "hello-from-csi\n" {
			t.Fatalf("data after detach: %q, %v", b, err)
		}
		// external-attacher keeps its finalizer on the PV until the PV is
		// deleted and no VolumeAttachment needs it.
		ns.must("delete", "pvc", "csi-static", "--wait=true")
		k.must("delete", "pv", "csi-static", "--wait=false")
		waitUntil(t, 60*time.Second, "the released PV deleted past external-attacher's finalizer", func() bool {
			out, err := k.run("", "get", "pv", "csi-static")
			return err != nil && strings.Contains(out, "NotFound")
		})
	})
	if t.Failed() {
		return
	}

	t.Run("external-provisioner creates a volume for a pod's claim and deletes it with the claim", func(t *testing.T) {
		applyYAML(k, csiDynamicVolume)
		waitPod(t, ns, "csi-dynamic-writer", 3*time.Minute, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
		waitUntil(t, 30*time.Second, "claim Bound", func() bool {
			return ns.must("get", "pvc", "csi-dynamic", "-o", "jsonpath={.status.phase}") == "Bound"
		})
		// The scheduler chose the node, the PV controller named the
		// provisioner, external-provisioner created the PV.
		got := ns.must("get", "pvc", "csi-dynamic", "-o",
			`jsonpath={.metadata.annotations.volume\.kubernetes\.io/selected-node} {.metadata.annotations.volume\.kubernetes\.io/storage-provisioner}`)
		if want := c.node + " " + csiDriverName; got != want {
			t.Fatalf("claim annotations: got %q, want %q (selected-node storage-provisioner)", got, want)
		}
		pv := ns.must("get", "pvc", "csi-dynamic", "-o", "jsonpath={.spec.volumeName}")
		got = k.must("get", "pv", pv, "-o", `jsonpath={.spec.csi.driver} {.spec.csi.volumeHandle} `+
			`{.metadata.annotations.pv\.kubernetes\.io/provisioned-by} {.spec.persistentVolumeReclaimPolicy} {.spec.claimRef.name} `+
			`{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}`)
		if want := strings.Join([]string{csiDriverName, pv, csiDriverName, "Delete", "csi-dynamic", c.node}, " "); got != want {
			t.Fatalf("provisioned PV: got %q, want %q (driver handle provisioned-by reclaim claim node)", got, want)
		}
		// CreateVolume ran in the driver with the claim's size, and the
		// pod writes into that volume.
		volDir := filepath.Join(stateDir, "volumes", pv)
		if b, err := os.ReadFile(filepath.Join(stateDir, "capacities", pv)); err != nil || string(b) != "16777216" {
			t.Fatalf("driver's capacity record of %s: %q, %v; want 16Mi", pv, b, err)
		}
		waitUntil(t, 30*time.Second, "the pod's file in the provisioned volume's directory", func() bool {
			b, err := os.ReadFile(filepath.Join(volDir, "hello"))
			return err == nil && string(b) == "hello-from-dynamic\n"
		})

		// Reclaim Delete: the PV controller releases the PV and leaves it
		// to external-provisioner, which calls DeleteVolume (once the
		// volume is detached) and deletes the PV.
		ns.must("delete", "pod", "csi-dynamic-writer", "--wait=true")
		ns.must("delete", "pvc", "csi-dynamic", "--wait=true")
		waitUntil(t, 8*time.Minute, "the provisioned PV deleted by external-provisioner", func() bool {
			out, err := k.run("", "get", "pv", pv)
			return err != nil && strings.Contains(out, "NotFound")
		})
		if _, err := os.Stat(volDir); !os.IsNotExist(err) {
			t.Fatalf("the driver's volume directory after the PV is gone: %v", err)
		}
	})
	if t.Failed() {
		return
	}

	// Without the sidecar and the annotation, Skiff's own provisioner
	// calls the driver's controller service through the kubelet.
	t.Run("Skiff provisions and deletes a volume itself once the sidecar is gone", func(t *testing.T) {
		ns.must("patch", "daemonset", "csi-testdriver", "--type=json", "-p",
			`[{"op":"test","path":"/spec/template/spec/containers/3/name","value":"provisioner"},{"op":"remove","path":"/spec/template/spec/containers/3"}]`)
		k.must("annotate", "csidriver", csiDriverName, "skiff.dev/csi-provisioner-")
		ns.must("rollout", "status", "daemonset/csi-testdriver", "--timeout=3m")
		// With capacity tracking on, the scheduler places the claim's pod
		// only where a CSIStorageCapacity says the class fits, and Skiff
		// publishes them from the driver's GetCapacity.
		k.must("patch", "csidriver", csiDriverName, "-p", `{"spec":{"storageCapacity":true}}`)
		waitUntil(t, time.Minute, "a CSIStorageCapacity of the driver's class for the node", func() bool {
			out, _ := k.run("", "get", "csistoragecapacities", "-n", "kube-system", "-l", "csi.storage.k8s.io/drivername="+csiDriverName,
				"-o", `jsonpath={range .items[*]}{.storageClassName} {.nodeTopology.matchLabels} {.capacity}{"\n"}{end}`)
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 3 && f[0] == "csi-dynamic" && strings.Contains(f[1], c.node) && f[2] != "0" {
					return true
				}
			}
			return false
		})
		applyYAML(k, strings.NewReplacer("csi-dynamic-writer", "csi-builtin-writer", "claimName: csi-dynamic", "claimName: csi-builtin",
			"{name: csi-dynamic, namespace", "{name: csi-builtin, namespace", "hello-from-dynamic", "hello-from-builtin").Replace(csiDynamicVolume))
		waitPod(t, ns, "csi-builtin-writer", 3*time.Minute, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
		// Skiff's controller, not a leftover sidecar, did it.
		waitUntil(t, 30*time.Second, "ProvisioningSucceeded from skiff-csi-provisioner", func() bool {
			out, _ := ns.run("", "get", "events", "--field-selector", "involvedObject.name=csi-builtin,reason=ProvisioningSucceeded",
				"-o", "jsonpath={.items[*].source.component}")
			return out == "skiff-csi-provisioner"
		})
		uid := ns.must("get", "pvc", "csi-builtin", "-o", "jsonpath={.metadata.uid}")
		pv := ns.must("get", "pvc", "csi-builtin", "-o", "jsonpath={.spec.volumeName}")
		if pv != "pvc-"+uid {
			t.Fatalf("claim bound to %q, want the provisioned pvc-%s", pv, uid)
		}
		got := k.must("get", "pv", pv, "-o", `jsonpath={.spec.csi.volumeHandle} {.metadata.annotations.pv\.kubernetes\.io/provisioned-by} `+
			`{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}`)
		if want := strings.Join([]string{pv, csiDriverName, c.node}, " "); got != want {
			t.Fatalf("provisioned PV: got %q, want %q (handle provisioned-by node)", got, want)
		}
		volDir := filepath.Join(stateDir, "volumes", pv)
		if b, err := os.ReadFile(filepath.Join(stateDir, "capacities", pv)); err != nil || string(b) != "16777216" {
			t.Fatalf("driver's capacity record of %s: %q, %v; want 16Mi", pv, b, err)
		}
		waitUntil(t, 30*time.Second, "the pod's file in the provisioned volume's directory", func() bool {
			b, err := os.ReadFile(filepath.Join(volDir, "hello"))
			return err == nil && string(b) == "hello-from-builtin\n"
		})

		ns.must("delete", "pod", "csi-builtin-writer", "--wait=true")
		ns.must("delete", "pvc", "csi-builtin", "--wait=true")
		waitUntil(t, 5*time.Minute, "the provisioned PV deleted by Skiff's provisioner", func() bool {
			out, err := k.run("", "get", "pv", pv)
			return err != nil && strings.Contains(out, "NotFound")
		})
		if _, err := os.Stat(volDir); !os.IsNotExist(err) {
			t.Fatalf("the driver's volume directory after the PV is gone: %v", err)
		}
	})

	t.Run("a Block claim reaches the container as a device", func(t *testing.T) {
		applyYAML(k, csiBlockVolume)
		waitPod(t, ns, "csi-block-user", 3*time.Minute, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
		if out := ns.must("logs", "csi-block-user"); out != "hello-block" {
			t.Fatalf("the pod read %q back from its device, want hello-block", out)
		}
		pv := ns.must("get", "pvc", "csi-block", "-o", "jsonpath={.spec.volumeName}")
		publish := filepath.Join(kubeletDir, "plugins", "kubernetes.io", "csi", "volumeDevices", "publish", pv)
		if _, err := os.Stat(publish); err != nil {
			t.Fatalf("the volume's publish directory while its pod exists: %v", err)
		}
		ns.must("delete", "pod", "csi-block-user", "--wait=true")
		waitUntil(t, time.Minute, "the block volume unpublished and unstaged", func() bool {
			_, errPub := os.Stat(publish)
			_, errStage := os.Stat(filepath.Join(kubeletDir, "plugins", "kubernetes.io", "csi", "volumeDevices", "staging", pv))
			return os.IsNotExist(errPub) && os.IsNotExist(errStage)
		})
		ns.must("delete", "pvc", "csi-block", "--wait=true")
		waitUntil(t, 5*time.Minute, "the block PV deleted", func() bool {
			out, err := k.run("", "get", "pv", pv)
			return err != nil && strings.Contains(out, "NotFound")
		})
	})

	t.Run("a claim cloned from another starts with its data", func(t *testing.T) {
		applyYAML(k, csiCloneSource)
		waitPod(t, ns, "csi-src-writer", 3*time.Minute, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
		applyYAML(k, csiClone)
		waitPod(t, ns, "csi-clone-reader", 3*time.Minute, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
		if out := strings.TrimSpace(ns.must("logs", "csi-clone-reader")); out != "hello-clone" {
			t.Fatalf("the clone's pod read %q, want the source's hello-clone", out)
		}
		src := ns.must("get", "pvc", "csi-src", "-o", "jsonpath={.spec.volumeName}")
		clone := ns.must("get", "pvc", "csi-clone", "-o", "jsonpath={.spec.volumeName}")
		if src == clone || clone == "" {
			t.Fatalf("clone bound to %q, source to %q: want a volume of its own", clone, src)
		}
		waitUntil(t, 30*time.Second, "the source's cloning protection released", func() bool {
			out, _ := ns.run("", "get", "pvc", "csi-src", "-o", "jsonpath={.metadata.finalizers}")
			return !strings.Contains(out, "cloning-protection")
		})
		ns.must("delete", "pod", "csi-src-writer", "csi-clone-reader", "--wait=true")
		ns.must("delete", "pvc", "csi-clone", "csi-src", "--wait=true")
		for _, pv := range []string{src, clone} {
			waitUntil(t, 5*time.Minute, "PV "+pv+" deleted", func() bool {
				out, err := k.run("", "get", "pv", pv)
				return err != nil && strings.Contains(out, "NotFound")
			})
		}
	})
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// mountPointsUnder lists the host's mount points under dir (this test
// runs in the node's mount namespace).
func mountPointsUnder(t *testing.T, dir string) map[string]bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out[fields[4]] = true
		}
	}
	return out
}

// stagedMounts are the driver's staging mounts among mounts.
func stagedMounts(mounts map[string]bool) []string {
	var out []string
	for m := range mounts {
		if strings.Contains(m, "/plugins/kubernetes.io/csi/"+csiDriverName+"/") && strings.HasSuffix(m, "/globalmount") {
			out = append(out, m)
		}
	}
	return out
}

// dumpCSIState logs what explains a failure: the driver pod's containers,
// the attachments and the CSINode.
func dumpCSIState(t *testing.T, k kubectl) {
	for _, args := range [][]string{
		{"-n", "csi-test", "logs", "ds/csi-testdriver", "--all-containers", "--tail=60"},
		{"-n", "csi-test", "get", "pods", "-o", "wide"},
		{"-n", "csi-test", "describe", "pods"},
		{"get", "volumeattachments", "-o", "yaml"},
		{"get", "pv,pvc", "-A", "-o", "yaml"},
		{"get", "csinodes", "-o", "yaml"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
	} {
		out, err := k.run("", args...)
		t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
