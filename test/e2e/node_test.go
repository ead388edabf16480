package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPodsOnContainerd runs real pods through the kubelet and containerd,
// checking what a user sees in the pod status for each behaviour.
func TestPodsOnContainerd(t *testing.T) {
	c := startNodeCluster(t)
	k := c.kubectl()
	// Subtests share the node and run side by side.
	sub := func(name string, fn func(*testing.T, kubectl)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := k
			k.t = t
			fn(t, k)
		})
	}

	sub("busybox runs and is ready", func(t *testing.T, k kubectl) {
		k.must("run", "sleeper", "--image=busybox", "--", "sleep", "3600")
		p := waitPod(t, k, "sleeper", 60*time.Second, "Running and Ready", func(p podJSON) bool {
			return p.Status.Phase == "Running" && p.condition("Ready") == "True"
		})
		if !strings.HasPrefix(p.Status.PodIP, "10.77.0.") {
			t.Errorf("pod IP %q is not from the node's pod CIDR 10.77.0.0/24", p.Status.PodIP)
		}
		if cs := p.Status.ContainerStatuses[0]; !strings.HasPrefix(cs.ContainerID, "containerd://") || cs.RestartCount != 0 {
			t.Errorf("container status = %+v", cs)
		}
	})

	sub("restart policies", func(t *testing.T, k kubectl) {
		k.must("run", "never-fails", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo bye > /dev/termination-log; exit 3")
		k.must("run", "onfailure-ok", "--image=busybox", "--restart=OnFailure", "--", "true")
		k.must("run", "onfailure-fails", "--image=busybox", "--restart=OnFailure", "--", "sh", "-c", "exit 1")
		k.must("run", "always-exits", "--image=busybox", "--", "true")

		p := waitPod(t, k, "never-fails", 60*time.Second, "Failed", func(p podJSON) bool { return p.Status.Phase == "Failed" })
		term := p.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != 3 || term.Reason != "Error" || strings.TrimSpace(term.Message) != "bye" {
			t.Errorf("never-fails: terminated state = %+v, want exit 3, reason Error, message bye", term)
		}
		if n := p.Status.ContainerStatuses[0].RestartCount; n != 0 {
			t.Errorf("never-fails restarted %d times", n)
		}
		p = waitPod(t, k, "onfailure-ok", 60*time.Second, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
		if n := p.Status.ContainerStatuses[0].RestartCount; n != 0 {
			t.Errorf("onfailure-ok restarted %d times", n)
		}
		for _, name := range []string{"onfailure-fails", "always-exits"} {
			p = waitPod(t, k, name, 60*time.Second, "restarted twice", func(p podJSON) bool {
				return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
			})
			if p.Status.Phase != "Running" {
				t.Errorf("%s: phase %s while restarting, want Running", name, p.Status.Phase)
			}
		}
		// Between restarts the container backs off, as upstream shows it.
		waitPod(t, k, "onfailure-fails", 60*time.Second, "CrashLoopBackOff", func(p podJSON) bool {
			w := p.Status.ContainerStatuses[0].State.Waiting
			return w != nil && w.Reason == "CrashLoopBackOff" && p.Status.ContainerStatuses[0].LastState.Terminated != nil &&
				p.Status.ContainerStatuses[0].LastState.Terminated.ExitCode == 1
		})
	})

	sub("init containers run in order", func(t *testing.T, k kubectl) {
		applyYAML(k, `
apiVersion: v1
kind: Pod
metadata: {name: inits}
spec:
  restartPolicy: Never
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: first, image: busybox, command: [sh, -c, "echo one >> /work/order"], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: busybox, command: [sh, -c, "echo two >> /work/order"], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "cat /work/order > /dev/termination-log; test \"$(cat /work/order | tr '\\n' ' ')\" = 'one two '"]
    volumeMounts: [{name: work, mountPath: /work}]
`)
		p := waitPod(t, k, "inits", 60*time.Second, "completed", func(p podJSON) bool {
			return p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed"
		})
		if p.Status.Phase != "Succeeded" {
			t.Fatalf("phase %s; main saw %+v", p.Status.Phase, p.Status.ContainerStatuses[0].State.Terminated)
		}
		for _, ic := range p.Status.InitContainerStatuses {
			if ic.State.Terminated == nil || ic.State.Terminated.ExitCode != 0 {
				t.Errorf("init container %s: %+v", ic.Name, ic.State)
			}
		}
		if p.condition("Initialized") != "True" {
			t.Errorf("Initialized = %q", p.condition("Initialized"))
		}
	})

	sub("failing liveness probe restarts", func(t *testing.T, k kubectl) {
		applyYAML(k, `
apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
`)
		waitPod(t, k, "liveness", 60*time.Second, "a restart by the liveness probe", func(p podJSON) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
		})
	})

	sub("readiness probe gates Ready", func(t *testing.T, k kubectl) {
		applyYAML(k, `
apiVersion: v1
kind: Pod
metadata: {name: readiness}
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "sleep 4; touch /tmp/ready; sleep 3600"]
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
`)
		p := waitPod(t, k, "readiness", 60*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
		if p.condition("Ready") == "True" {
			t.Fatal("Ready before the readiness probe passed")
		}
		waitPod(t, k, "readiness", 60*time.Second, "Ready", func(p podJSON) bool {
			return p.condition("Ready") == "True" && p.Status.ContainerStatuses[0].Ready
		})
	})

	sub("env from ConfigMap, Secret and downward API", func(t *testing.T, k kubectl) {
		applyYAML(k, `
apiVersion: v1
kind: ConfigMap
metadata: {name: env-cm}
data: {color: blue, size: large}
---
apiVersion: v1
kind: Secret
metadata: {name: env-secret}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: envs, labels: {tier: web}}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'echo "$COLOR $PASSWORD $POD_NAME $POD_NS $TIER $CFG_size $MEM_LIMIT_MI $GREETING" > /dev/termination-log']
    resources: {limits: {memory: 64Mi}}
    envFrom: [{configMapRef: {name: env-cm}, prefix: CFG_}]
    env:
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: env-cm, key: color}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: env-secret, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: TIER, valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}}
    - {name: MEM_LIMIT_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: GREETING, value: "hello-$(COLOR)"}
`)
		p := waitPod(t, k, "envs", 60*time.Second, "Succeeded", func(p podJSON) bool { return p.Status.Phase == "Succeeded" })
		got := strings.TrimSpace(p.Status.ContainerStatuses[0].State.Terminated.Message)
		if want := "blue s3cret envs default web large 64 hello-blue"; got != want {
			t.Errorf("container saw %q, want %q", got, want)
		}
	})

	sub("configMap volume updates in place", func(t *testing.T, k kubectl) {
		applyYAML(k, `
apiVersion: v1
kind: ConfigMap
metadata: {name: vol-cm}
data: {mode: v1}
---
apiVersion: v1
kind: Pod
metadata: {name: cmvol}
spec:
  volumes: [{name: cfg, configMap: {name: vol-cm}}]
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
    readinessProbe:
      exec: {command: [grep, -q, v2, /etc/cfg/mode]}
      periodSeconds: 1
`)
		p := waitPod(t, k, "cmvol", 60*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
		if p.condition("Ready") == "True" {
			t.Fatal("Ready with the old ConfigMap content")
		}
		k.must("patch", "configmap", "vol-cm", "-p", `{"data":{"mode":"v2"}}`)
		p = waitPod(t, k, "cmvol", 60*time.Second, "Ready after the update", func(p podJSON) bool { return p.condition("Ready") == "True" })
		if p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Error("the container was restarted to see the update")
		}
	})

	sub("memory limit OOM-kills", func(t *testing.T, k kubectl) {
		applyYAML(k, `
apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    command: [sh, -c, 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived']
    resources: {limits: {memory: 32Mi}}
`)
		p := waitPod(t, k, "oom", 90*time.Second, "terminated", func(p podJSON) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Terminated != nil
		})
		if term := p.Status.ContainerStatuses[0].State.Terminated; term.Reason != "OOMKilled" || term.ExitCode != 137 {
			t.Errorf("terminated = %+v, want OOMKilled with exit code 137", term)
		}
	})

	sub("preStop and grace period on delete", func(t *testing.T, k kubectl) {
		hostDir := filepath.Join(c.dataDir, "prestop")
		applyYAML(k, `
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 4
  volumes: [{name: out, hostPath: {path: `+hostDir+`, type: DirectoryOrCreate}}]
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      preStop:
        exec: {command: [sh, -c, "echo stopping > /out/prestop"]}
`)
		p := waitPod(t, k, "graceful", 60*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
		uid := p.Metadata.UID
		start := time.Now()
		k.must("delete", "pod", "graceful", "--wait=true", "--timeout=60s")
		took := time.Since(start)
		// sleep ignores SIGTERM, so the kubelet must wait the whole grace
		// period (4 s) and then kill; not the default 30 s.
		if took < 3*time.Second || took > 20*time.Second {
			events, _ := k.run("", "get", "events", "--field-selector", "involvedObject.name=graceful")
			t.Errorf("delete took %s, want about the 4 s grace period; the pod's events:\n%s", took, events)
		}
		if data, err := os.ReadFile(filepath.Join(hostDir, "prestop")); err != nil || strings.TrimSpace(string(data)) != "stopping" {
			t.Errorf("preStop hook output: %q, %v", data, err)
		}
		// Deleting the pod removed its containers and sandbox.
		deadline := time.Now().Add(20 * time.Second)
		for {
			left := c.ctr("containers", "list", "-q", `labels."io.kubernetes.pod.uid"==`+uid)
			if strings.TrimSpace(left) == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("containers of the deleted pod remain:\n%s", left)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	sub("missing image with pull policy Never", func(t *testing.T, k kubectl) {
		k.must("run", "noimage", "--image=example.invalid/none:1", "--image-pull-policy=Never", "--", "true")
		waitPod(t, k, "noimage", 60*time.Second, "ErrImageNeverPull", func(p podJSON) bool {
			w := p.Status.ContainerStatuses
			return len(w) == 1 && w[0].State.Waiting != nil && w[0].State.Waiting.Reason == "ErrImageNeverPull"
		})
	})
}

// TestAgentRestartAdoptsContainers stops `skiff up` with --keep-containers
// and starts it again: the running container is adopted, not restarted.
func TestAgentRestartAdoptsContainers(t *testing.T) {
	c := startNodeCluster(t, "--keep-containers", "--cni-bridge", "skiffe2e1", "--cluster-cidr", "10.78.0.0/16")
	k := c.kubectl()
	k.must("run", "survivor", "--image=busybox", "--", "sleep", "3600")
	before := waitPod(t, k, "survivor", 60*time.Second, "Running", func(p podJSON) bool {
		return p.Status.Phase == "Running" && p.condition("Ready") == "True"
	})
	c.stop()
	c.start()
	after := waitPod(t, k, "survivor", 30*time.Second, "Ready after the restart", func(p podJSON) bool {
		return p.Status.Phase == "Running" && p.condition("Ready") == "True"
	})
	b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]
	if a.ContainerID != b.ContainerID || a.RestartCount != 0 || a.State.Running == nil || a.State.Running.StartedAt != b.State.Running.StartedAt {
		t.Errorf("container changed across the agent restart:\nbefore %+v\nafter  %+v", b, a)
	}
	// A pod deleted while the agent was down has its sandbox removed.
	k.must("run", "orphan", "--image=busybox", "--", "sleep", "3600")
	orphan := waitPod(t, k, "orphan", 60*time.Second, "Running", func(p podJSON) bool { return p.Status.Phase == "Running" })
	c.stop()
	// With the agent down nobody completes a graceful delete; force it.
	srv := startServer(t, filepath.Join(c.dataDir, "server"))
	kubectl{t: t, bin: k.bin, kubeconfig: srv.kubeconfig}.must("delete", "pod", "orphan", "--grace-period=0", "--force")
	srv.stop()
	c.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := c.ctr("containers", "list", "-q", `labels."io.kubernetes.pod.uid"==`+orphan.Metadata.UID)
		if strings.TrimSpace(left) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers of the pod deleted while the agent was down remain:\n%s", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
