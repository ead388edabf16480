package kubelet

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// TestMountSubPath follows upstream's kubelet (makeMounts and
// ExpandContainerVolumeMounts): subPathExpr expands from the container's
// environment, and unset variables, absolute paths and '..' are errors.
func TestMountSubPath(t *testing.T) {
	env := map[string]string{"POD_NAME": "foo", "ANNOTATION": "mypath", "ABS": "/tmp", "UP": "..", "EMPTY": ""}
	for _, tc := range []struct {
		name    string
		vm      v1.VolumeMount
		want    string
		wantErr string
	}{
		{name: "none", vm: v1.VolumeMount{}, want: ""},
		{name: "literal", vm: v1.VolumeMount{SubPath: "a/b"}, want: "a/b"},
		{name: "expr", vm: v1.VolumeMount{SubPathExpr: "$(ANNOTATION)/$(POD_NAME)"}, want: "mypath/foo"},
		{name: "escaped", vm: v1.VolumeMount{SubPathExpr: "$$(POD_NAME)"}, want: "$(POD_NAME)"},
		{name: "unset", vm: v1.VolumeMount{SubPathExpr: "$(NOPE)/$(POD_NAME)/$(EMPTY)"}, wantErr: "missing value for EMPTY, NOPE"},
		{name: "absolute", vm: v1.VolumeMount{SubPathExpr: "$(ABS)"}, wantErr: "error SubPath `/tmp` must not be an absolute path"},
		{name: "backstep", vm: v1.VolumeMount{SubPathExpr: "a/$(UP)/b"}, wantErr: "unable to provision SubPath `a/../b`: must not contain '..'"},
		{name: "dots in a name are fine", vm: v1.VolumeMount{SubPath: "a..b"}, want: "a..b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mountSubPath(tc.vm, env)
			if tc.wantErr != "" {
				var ce *configError
				if !errors.As(err, &ce) || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want config error %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("mountSubPath = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestContainerMountsSubPathExpr checks the mount source is the expanded
// directory inside the volume, created on demand, and that a failing
// expansion is a config error (CreateContainerConfigError upstream).
func TestContainerMountsSubPathExpr(t *testing.T) {
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{cfg: Config{DataDir: dir}}
	pod := &v1.Pod{}
	pod.Name, pod.Namespace, pod.UID = "p", "ns", "uid-1"
	c := &v1.Container{Name: "c", VolumeMounts: []v1.VolumeMount{
		{Name: "workdir1", MountPath: "/subpath_mount", SubPathExpr: "$(ANNOTATION)/$(POD_NAME)"},
	}}
	volumes := map[string]string{"workdir1": vol}

	mounts, err := k.containerMounts(pod, c, volumes, map[string]string{"POD_NAME": "foo", "ANNOTATION": "mypath"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(filepath.Join(vol, "mypath", "foo"))
	if mounts[0].ContainerPath != "/subpath_mount" || mounts[0].HostPath != want {
		t.Errorf("mount = %s <- %s, want /subpath_mount <- %s", mounts[0].ContainerPath, mounts[0].HostPath, want)
	}

	// The annotation the variable comes from is not set yet.
	_, err = k.containerMounts(pod, c, volumes, map[string]string{"POD_NAME": "foo", "ANNOTATION": ""}, 0)
	var ce *configError
	if !errors.As(err, &ce) || ce.msg != "missing value for ANNOTATION" {
		t.Errorf("err = %v, want config error %q", err, "missing value for ANNOTATION")
	}
}
