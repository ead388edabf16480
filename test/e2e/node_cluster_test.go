package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeCluster is a running `skiff up`: control plane, kubelet and its own
// containerd, with the locally built images imported.
type nodeCluster struct {
	process
	dataDir    string
	kubeconfig string
	node       string
}

// syncBuffer is a bytes.Buffer safe for the writer goroutines of exec.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// requireNodeRuntime skips unless this machine can run pods: root,
// containerd, runc and the CNI plugins (hack/install-deps.sh installs them).
func requireNodeRuntime(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running pods needs root")
	}
	for _, bin := range []string{"containerd", "runc", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (run hack/install-deps.sh)", bin)
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("CNI plugins not installed (run hack/install-deps.sh)")
	}
}

var (
	imagesOnce sync.Once
	imagesDir  string
	imagesErr  error
)

// testImages returns a directory holding pause.tar, busybox.tar and
// inclusterclient.tar (skiff.test/inclusterclient:latest), built
// once per test binary unless SKIFF_IMAGES points at `make images` output.
func testImages(t *testing.T) string {
	t.Helper()
	imagesOnce.Do(func() {
		if d := os.Getenv("SKIFF_IMAGES"); d != "" {
			imagesDir = d
			return
		}
		dir, err := os.MkdirTemp("", "skiff-e2e-images")
		if err != nil {
			imagesErr = err
			return
		}
		cmd := exec.Command("go", "run", "./hack/mkimages", "-out", dir)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			imagesErr = fmt.Errorf("build images: %v\n%s", err, out)
			return
		}
		imagesDir = dir
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return imagesDir
}

// startNodeCluster runs `skiff up` in a short temp dir (the containerd
// socket path must stay under the unix limit) on its own bridge and pod
// network, so it can run beside a developer's `make up`.
func startNodeCluster(t *testing.T, extra ...string) *nodeCluster {
	t.Helper()
	return startNodeClusterWith(t, "", extra...)
}

// startNodeClusterWith is startNodeCluster with another skiff binary (""
// for the one under test).
func startNodeClusterWith(t *testing.T, binary string, extra ...string) *nodeCluster {
	t.Helper()
	requireNodeRuntime(t)
	dir, err := os.MkdirTemp("", "skiff-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Containers kept running (--keep-containers) must not outlive
		// the test, nor their mounts block the removal.
		if out, err := exec.Command(skiffBin(t), "killall", "--data-dir", dir).CombinedOutput(); err != nil {
			t.Errorf("skiff killall: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	})
	c := &nodeCluster{process: process{t: t, name: "skiff up", binary: binary}, dataDir: dir, kubeconfig: filepath.Join(dir, "server", "admin.kubeconfig"), node: "e2e-node"}
	c.args = append([]string{"up", "--data-dir", dir, "--secure-port", strconv.Itoa(freePort(t)),
		"--node-name", c.node, "--images-dir", testImages(t), "--cni-bridge", "skiffe2e0", "--kubelet-port", strconv.Itoa(freePort(t)),
		"--cluster-cidr", "10.77.0.0/16", "--pod-log-dir", filepath.Join(dir, "log", "pods")}, extra...)
	if binary == "" && flagValue(c.args, "--dashboard-port") == "" {
		// Clusters run side by side: none may take the dashboard's
		// fixed default port unless the test asks for it.
		c.args = append(c.args, "--dashboard-port", "0")
	}
	c.start()
	t.Cleanup(c.stop)
	return c
}

func (c *nodeCluster) kubectl() kubectl {
	return kubectl{t: c.t, bin: kubectlBin(c.t, "1.33"), kubeconfig: c.kubeconfig}
}

func (c *nodeCluster) start() {
	c.t.Helper()
	k := c.kubectl()
	c.launch(90*time.Second, func() error {
		if _, err := os.Stat(c.kubeconfig); err != nil {
			return err
		}
		if err := nodeReady(k, c.node); err != nil {
			return err
		}
		// After a restart the node's Ready condition is the one written
		// before the stop; the node's containerd must answer too.
		sock := filepath.Join(c.dataDir, "agent", "containerd", "containerd.sock")
		if out, err := exec.Command("ctr", "--address", sock, "version").CombinedOutput(); err != nil {
			return fmt.Errorf("ctr version: %v: %s", err, out)
		}
		return nil
	})
}

// stop sends SIGTERM and waits for skiff (and its containerd) to exit.
func (c *nodeCluster) stop() { c.terminate(60 * time.Second) }

// ctr runs containerd's own CLI against the node's containerd, to look at
// the runtime behind the API's back.
func (c *nodeCluster) ctr(args ...string) string {
	c.t.Helper()
	sock := filepath.Join(c.dataDir, "agent", "containerd", "containerd.sock")
	out, err := exec.Command("ctr", append([]string{"--address", sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("ctr %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// podJSON is the part of a pod's status the tests read.
type podJSON struct {
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		InitContainerStatuses []containerStatusJSON `json:"initContainerStatuses"`
		ContainerStatuses     []containerStatusJSON `json:"containerStatuses"`
	} `json:"status"`
}

type containerStatusJSON struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	RestartCount int            `json:"restartCount"`
	ContainerID  string         `json:"containerID"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

type containerState struct {
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
	Running *struct {
		StartedAt string `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
		Message  string `json:"message"`
	} `json:"terminated"`
}

func (p podJSON) condition(t string) string {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func getPod(k kubectl, name string) (podJSON, error) {
	var p podJSON
	out, err := k.run("", "get", "pod", name, "-o", "json")
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal([]byte(out), &p)
}

// waitPod polls a pod until cond holds, failing the test after timeout.
func waitPod(t *testing.T, k kubectl, name string, timeout time.Duration, what string, cond func(podJSON) bool) podJSON {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last podJSON
	for time.Now().Before(deadline) {
		p, err := getPod(k, name)
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	desc, _ := k.run("", "describe", "pod", name)
	t.Fatalf("pod %s: %s not reached within %s; last status %+v\n%s", name, what, timeout, last.Status, desc)
	return last
}

func applyYAML(k kubectl, yaml string) {
	k.t.Helper()
	k.mustStdin(strings.TrimSpace(yaml)+"\n", "apply", "-f", "-")
}
