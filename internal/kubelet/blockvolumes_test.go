package kubelet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// blockHarness is a harness whose API holds claims bound to the given
// volumes (claim "c-<pv>" for each), whose node has the block devices
// devs, and whose events the test reads.
func blockHarness(t *testing.T, devs []string, pvs ...*v1.PersistentVolume) (*harness, *record.FakeRecorder) {
	t.Helper()
	h := newHarness(t)
	rec := record.NewFakeRecorder(20)
	h.k.recorder = rec
	h.k.blockDevice = func(path string) (string, error) {
		for _, d := range devs {
			if d == path {
				return path, nil
			}
		}
		return "", errors.New(path + ": no such device")
	}
	ctx := context.Background()
	for _, pv := range pvs {
		if _, err := h.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pvc := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c-" + pv.Name, Namespace: "ns"},
			Spec: v1.PersistentVolumeClaimSpec{VolumeName: pv.Name, VolumeMode: pv.Spec.VolumeMode}}
		if _, err := h.client.CoreV1().PersistentVolumeClaims("ns").Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return h, rec
}

func localPV(name, path string, mode v1.PersistentVolumeMode) *v1.PersistentVolume {
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PersistentVolumeSpec{
		VolumeMode:             ptr.To(mode),
		PersistentVolumeSource: v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: path}},
	}}
}

func csiPV(name string, mode *v1.PersistentVolumeMode) *v1.PersistentVolume {
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.PersistentVolumeSpec{
		VolumeMode:             mode,
		PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "d.example.com", VolumeHandle: "h"}},
	}}
}

// claimVolume is a pod volume named name on claim "c-<pv>".
func claimVolume(name, pv string, readOnly bool) v1.Volume {
	return v1.Volume{Name: name, VolumeSource: v1.VolumeSource{
		PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c-" + pv, ReadOnly: readOnly}}}
}

// events drains what the recorder holds.
func events(rec *record.FakeRecorder) string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return strings.Join(out, "\n")
		}
	}
}

func TestBlockClaimReachesContainerAsDevice(t *testing.T) {
	h, _ := blockHarness(t, []string{"/dev/loop3", "/dev/loop4"},
		localPV("pv-rw", "/dev/loop3", v1.PersistentVolumeBlock), localPV("pv-ro", "/dev/loop4", v1.PersistentVolumeBlock))
	pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
	pod.Spec.Volumes = []v1.Volume{claimVolume("rw", "pv-rw", false), claimVolume("ro", "pv-ro", true)}
	pod.Spec.Containers[0].VolumeDevices = []v1.VolumeDevice{{Name: "rw", DevicePath: "/dev/xvda"}, {Name: "ro", DevicePath: "/dev/xvdb"}}
	w := h.add(pod)
	h.sync(w)

	c := h.container(pod, "app")
	if c == nil || c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container not running: %+v; calls %v", c, h.rt.Calls())
	}
	got := h.rt.Containers[c.Id].Devices
	want := []*runtimeapi.Device{
		{ContainerPath: "/dev/xvda", HostPath: "/dev/loop3", Permissions: "mrw"},
		{ContainerPath: "/dev/xvdb", HostPath: "/dev/loop4", Permissions: "r"},
	}
	if len(got) != len(want) {
		t.Fatalf("devices = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].ContainerPath != want[i].ContainerPath || got[i].HostPath != want[i].HostPath || got[i].Permissions != want[i].Permissions {
			t.Errorf("device %d = %v, want %v", i, got[i], want[i])
		}
	}
	// No mount stands in for a device.
	for _, m := range c.Mounts {
		if strings.HasPrefix(m.HostPath, "/dev/loop") {
			t.Errorf("device mounted as a volume: %v", m)
		}
	}
	link := filepath.Join(h.k.cfg.DataDir, "pods", "u1", "volumeDevices", localVolumePluginDir, "pv-rw")
	if target, err := os.Readlink(link); err != nil || target != "/dev/loop3" {
		t.Errorf("device link %s -> %q, %v; want /dev/loop3", link, target, err)
	}
	// Syncing again keeps the link (no "file exists").
	h.sync(w)
	if !h.running(pod, "app") {
		t.Fatal("second sync stopped the container")
	}
	if err := h.k.teardownVolumes("u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("device link left after teardown: %v", err)
	}
}

// Volumes used against their mode, block volumes without a device and
// non-local block volumes keep the pod's containers from being created,
// with a FailedMount event that says why.
func TestBlockVolumeErrors(t *testing.T) {
	hostPathPV := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-hp"}, Spec: v1.PersistentVolumeSpec{
		VolumeMode:             ptr.To(v1.PersistentVolumeBlock),
		PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/dev/loop3"}},
	}}
	fsDir := t.TempDir()
	for _, tc := range []struct {
		name   string
		pv     *v1.PersistentVolume
		mount  bool // volumeMounts rather than volumeDevices
		volume *v1.Volume
		want   string
	}{
		{name: "block in volumeMounts", pv: localPV("pv-b", "/dev/loop3", v1.PersistentVolumeBlock), mount: true,
			want: "volume d has volumeMode Block, but is specified in volumeMounts"},
		{name: "filesystem in volumeDevices", pv: localPV("pv-f", fsDir, v1.PersistentVolumeFilesystem),
			want: "volume d has volumeMode Filesystem, but is specified in volumeDevices"},
		{name: "unset mode in volumeDevices", pv: &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-u"},
			Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: fsDir}}}},
			want: "volume d has volumeMode Filesystem, but is specified in volumeDevices"},
		{name: "emptyDir in volumeDevices", volume: &v1.Volume{Name: "d", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			want: "volume d has volumeMode Filesystem, but is specified in volumeDevices"},
		{name: "missing device", pv: localPV("pv-m", "/dev/loop9", v1.PersistentVolumeBlock),
			want: `MapVolume.MapPodDevice failed for volume "d": local volume "pv-m": /dev/loop9: no such device`},
		{name: "CSI block in volumeMounts", pv: csiPV("pv-cb", ptr.To(v1.PersistentVolumeBlock)), mount: true,
			want: "volume d has volumeMode Block, but is specified in volumeMounts"},
		{name: "CSI filesystem in volumeDevices", pv: csiPV("pv-cf", nil),
			want: "volume d has volumeMode Filesystem, but is specified in volumeDevices"},
		{name: "hostPath block", pv: hostPathPV,
			want: `MapVolume.MapPodDevice failed for volume "d": persistentvolume "pv-hp": hostPath volumes do not support volumeMode Block`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pvs []*v1.PersistentVolume
			if tc.pv != nil {
				pvs = append(pvs, tc.pv)
			}
			h, rec := blockHarness(t, []string{"/dev/loop3"}, pvs...)
			pod := testPodSpec("p", "u1", v1.RestartPolicyAlways)
			if tc.volume != nil {
				pod.Spec.Volumes = []v1.Volume{*tc.volume}
			} else {
				pod.Spec.Volumes = []v1.Volume{claimVolume("d", tc.pv.Name, false)}
			}
			if tc.mount {
				pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "d", MountPath: "/data"}}
			} else {
				pod.Spec.Containers[0].VolumeDevices = []v1.VolumeDevice{{Name: "d", DevicePath: "/dev/xvda"}}
			}
			w := h.add(pod)
			h.sync(w)
			if n := h.rt.Count("CreateContainer"); n != 0 {
				t.Errorf("CreateContainer called %d times", n)
			}
			ev := events(rec)
			if !strings.Contains(ev, "Warning FailedMount "+tc.want) {
				t.Errorf("events:\n%s\nwant FailedMount %q", ev, tc.want)
			}
			if phase := h.apiPod(pod).Status.Phase; phase != v1.PodPending {
				t.Errorf("phase = %s, want Pending", phase)
			}
		})
	}
}

// The real resolver accepts block devices (through links too) and refuses
// anything else.
func TestLocalBlockDevice(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		file:                       "is not a block device",
		dir:                        "is not a block device",
		"/dev/null":                "is not a block device", // a character device
		filepath.Join(dir, "nope"): "no such file or directory",
	} {
		if _, err := localBlockDevice(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("localBlockDevice(%s) = %v, want an error containing %q", path, err, want)
		}
	}

	dev := anyBlockDevice()
	if dev == "" {
		t.Skip("no block device on this machine")
	}
	link := filepath.Join(dir, "by-id")
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dev, link} {
		if got, err := localBlockDevice(path); err != nil || got != dev {
			t.Errorf("localBlockDevice(%s) = %q, %v; want %s", path, got, err, dev)
		}
	}
}

// anyBlockDevice is a block device node of this machine, or "".
func anyBlockDevice() string {
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		p := "/dev/" + e.Name()
		if info, err := os.Stat(p); err == nil && info.Mode()&os.ModeDevice != 0 && info.Mode()&os.ModeCharDevice == 0 {
			return p
		}
	}
	return ""
}

// A devicePath must be absolute and name a claim of the pod; both are
// configuration errors, as upstream.
func TestContainerDevicesConfigErrors(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID("u1")}, Spec: v1.PodSpec{Volumes: []v1.Volume{claimVolume("d", "pv", false)}}}
	vols := map[string]string{"d": "/dev/loop3"}
	for _, tc := range []struct {
		dev  v1.VolumeDevice
		want string
	}{
		{v1.VolumeDevice{Name: "d", DevicePath: "dev/xvda"}, "error DevicePath `dev/xvda` must be an absolute path"},
		{v1.VolumeDevice{Name: "other", DevicePath: "/dev/xvda"}, `cannot find volume "other" to pass into container "app"`},
	} {
		c := &v1.Container{Name: "app", VolumeDevices: []v1.VolumeDevice{tc.dev}}
		_, err := containerDevices(pod, c, vols)
		var ce *configError
		if !errors.As(err, &ce) || ce.msg != tc.want {
			t.Errorf("%v: err = %v, want configError %q", tc.dev, err, tc.want)
		}
	}
}
