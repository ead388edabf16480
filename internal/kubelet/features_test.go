package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/internal/kubelet/criremote"
)

// TestSyncPodVolumesProbesAndHooks starts a pod using most of the spec a
// container can carry and checks what reaches the runtime and the status.
func TestSyncPodVolumesProbesAndHooks(t *testing.T) {
	h := newHarness(t,
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"color": "blue"}},
		&v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"pw": []byte("s3")}},
	)
	var execs atomic.Int32
	h.rt.ExecResult = func(_ string, cmd []string) ([]byte, error) {
		execs.Add(1)
		if cmd[0] == "fail" {
			return []byte("nope"), &criremote.ExitError{Code: 1}
		}
		return []byte("ok"), nil
	}
	hostDir := filepath.Join(t.TempDir(), "host")
	dirOrCreate := v1.HostPathDirectoryOrCreate
	fsGroup := int64(2000)
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Labels = map[string]string{"app": "web"}
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: &fsGroup, Sysctls: []v1.Sysctl{{Name: "net.ipv4.ip_forward", Value: "1"}}}
	pod.Spec.HostAliases = []v1.HostAlias{{IP: "1.2.3.4", Hostnames: []string{"alias"}}}
	pod.Spec.Subdomain = "sub"
	pod.Spec.Volumes = []v1.Volume{
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: &dirOrCreate}}},
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "sec"}}},
		{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
	}
	c := &pod.Spec.Containers[0]
	c.Ports = []v1.ContainerPort{{Name: "http", ContainerPort: 80, HostPort: 8080}, {ContainerPort: 53, HostPort: 5353, Protocol: v1.ProtocolUDP}}
	c.EnvFrom = []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}},
		{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}}}}
	c.VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "host", MountPath: "/host"},
		{Name: "cfg", MountPath: "/cfg"}, {Name: "sec", MountPath: "/sec"}, {Name: "info", MountPath: "/info"}}
	c.Resources = v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("64Mi")}}
	c.SecurityContext = &v1.SecurityContext{Capabilities: &v1.Capabilities{Add: []v1.Capability{"CAP_NET_ADMIN"}, Drop: []v1.Capability{"all"}}}
	c.Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}
	c.ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"ok"}}}, PeriodSeconds: 1}
	c.LivenessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"fail"}}}, PeriodSeconds: 1, FailureThreshold: 1}
	w := h.add(pod)
	h.sync(w)

	ctr := h.container(pod, "app")
	if ctr == nil || ctr.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container not running: %+v", ctr)
	}
	mounts := map[string]string{}
	for _, m := range ctr.Mounts {
		mounts[m.ContainerPath] = m.HostPath
	}
	for path, want := range map[string]string{"/cfg/color": "blue", "/sec/pw": "s3", "/info/labels": `app="web"`} {
		dir, file := filepath.Split(path)
		data, err := os.ReadFile(filepath.Join(mounts[filepath.Clean(dir)], file))
		if err != nil || string(data) != want {
			t.Errorf("%s = %q (%v), want %q", path, data, err, want)
		}
	}
	if mounts["/host"] != hostDir {
		t.Errorf("hostPath mounted from %q", mounts["/host"])
	}
	if _, err := os.Stat(hostDir); err != nil {
		t.Errorf("DirectoryOrCreate did not create the directory: %v", err)
	}
	hosts, err := os.ReadFile(mounts["/etc/hosts"])
	if err != nil || !strings.Contains(string(hosts), "p.sub.ns.svc.cluster.local") || !strings.Contains(string(hosts), "1.2.3.4\talias") {
		t.Errorf("/etc/hosts = %q (%v)", hosts, err)
	}
	if execs.Load() == 0 {
		t.Error("postStart hook did not run")
	}
	// The readiness probe passes, the liveness probe fails: the status
	// turns Ready, then the container is killed and restarted. Probes run
	// on the kubelet's (fake) clock, so time moves on while we wait.
	waitUntil(t, "readiness and liveness results", func() bool {
		h.clock.Step(time.Second)
		h.k.probes.mu.Lock()
		defer h.k.probes.mu.Unlock()
		r := h.k.probes.results[ctr.Id]
		return r != nil && r.ready && r.mustRestart
	})
	h.sync(w)
	if h.container(pod, "app").State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatal("liveness failure did not stop the container")
	}
	h.sync(w)
	if !h.running(pod, "app") {
		t.Fatal("not restarted after the liveness kill")
	}
	// The volumes go with the pod.
	if err := h.k.teardownVolumes(pod.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mounts["/scratch"]); !os.IsNotExist(err) {
		t.Errorf("emptyDir left behind: %v", err)
	}
}

func TestProbeHandlers(t *testing.T) {
	h := newHarness(t)
	h.rt.ExecResult = func(_ string, cmd []string) ([]byte, error) {
		if cmd[0] == "fail" {
			return nil, &criremote.ExitError{Code: 2}
		}
		return nil, nil
	}
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Spec.HostNetwork = true // probes reach the node's address
	c := &pod.Spec.Containers[0]
	c.Ports = []v1.ContainerPort{{Name: "web", ContainerPort: 1}}
	ctx := context.Background()
	tests := []struct {
		name    string
		handler v1.ProbeHandler
		ok      bool
	}{
		{"exec ok", v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"ok"}}}, true},
		{"exec failure", v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"fail"}}}, false},
		{"tcp refused", v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromString("web"), Host: "127.0.0.1"}}, false},
		{"http refused", v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(1), Host: "127.0.0.1", Path: "/"}}, false},
		{"unknown port", v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromString("nope")}}, false},
	}
	for _, tc := range tests {
		err := h.k.probe(ctx, pod, c, "id", &v1.Probe{ProbeHandler: tc.handler, TimeoutSeconds: 1})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	for kind, want := range map[probeKind]string{liveness: "Liveness", readiness: "Readiness", startup: "Startup"} {
		if kind.String() != want {
			t.Errorf("%d.String() = %s", kind, kind.String())
		}
	}
}
