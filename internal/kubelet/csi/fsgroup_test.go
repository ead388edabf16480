package csi

import (
	"os"
	"path/filepath"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// fsGroupPod is a test pod with fsGroup testFSGroup.
func fsGroupPod(uid string, policy *v1.PodFSGroupChangePolicy) *v1.Pod {
	pod := testPod(uid)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr.To[int64](testFSGroup), FSGroupChangePolicy: policy}
	return pod
}

// setFSGroupPolicy sets (nil: clears) the test CSIDriver's fsGroupPolicy.
func (env *testEnv) setFSGroupPolicy(t *testing.T, policy *storagev1.FSGroupPolicy) {
	t.Helper()
	ctx := t.Context()
	d, err := env.client.StorageV1().CSIDrivers().Get(ctx, testDriver, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.FSGroupPolicy = policy
	if _, err := env.client.StorageV1().CSIDrivers().Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// volumeContents is what the fake driver "mounts": a directory and a file.
func volumeContents(target string) error {
	if err := os.Mkdir(filepath.Join(target, "dir"), 0o700); err != nil && !os.IsExist(err) {
		return err
	}
	return os.WriteFile(filepath.Join(target, "dir", "file"), []byte("x"), 0o600)
}

func TestVolumeMountGroupDelegatesFSGroupToDriver(t *testing.T) {
	requireRoot(t)
	env := newEnvWithDriver(t, &fakeNodeService{stages: true, mountGroup: true, onPublish: volumeContents})
	env.addObjects(t, false)
	env.setFSGroupPolicy(t, ptr.To(storagev1.FileFSGroupPolicy)) // would chown, were it not delegated
	ctx := t.Context()

	target, err := env.m.SetUpPersistent(ctx, fsGroupPod("uid-g1", nil), "data", testPV("vol-g1"), false)
	if err != nil {
		t.Fatal(err)
	}
	stages := callsOf[*csipb.NodeStageVolumeRequest](env.node)
	pubs := callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(stages) != 1 || stages[0].GetVolumeCapability().GetMount().GetVolumeMountGroup() != "4321" {
		t.Errorf("stage requests = %v, want one with VolumeMountGroup 4321", stages)
	}
	if len(pubs) != 1 || pubs[0].GetVolumeCapability().GetMount().GetVolumeMountGroup() != "4321" {
		t.Errorf("publish requests = %v, want one with VolumeMountGroup 4321", pubs)
	}
	for _, p := range []string{target, filepath.Join(target, "dir"), filepath.Join(target, "dir", "file")} {
		if g := gidOf(t, p); g == testFSGroup {
			t.Errorf("%s given to the fsGroup by the kubelet, though the driver applies it", p)
		}
		if modeOf(t, p)&os.ModeSetgid != 0 {
			t.Errorf("%s: setgid set by the kubelet", p)
		}
	}

	// A pod without fsGroup sends no mount group.
	if _, err := env.m.SetUpPersistent(ctx, testPod("uid-g2"), "data", testPV("vol-g1"), false); err != nil {
		t.Fatal(err)
	}
	pubs = callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(pubs) != 2 || pubs[1].GetVolumeCapability().GetMount().GetVolumeMountGroup() != "" {
		t.Errorf("publish for a pod without fsGroup = %v, want no VolumeMountGroup", pubs[len(pubs)-1])
	}
}

func TestFSGroupPolicyDecidesOwnership(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name     string
		policy   *storagev1.FSGroupPolicy // nil: the default
		fsType   string
		modes    []v1.PersistentVolumeAccessMode
		readOnly bool
		applied  bool
	}{
		{"File without fsType or RWO", ptr.To(storagev1.FileFSGroupPolicy), "", []v1.PersistentVolumeAccessMode{v1.ReadWriteMany}, false, true},
		{"None", ptr.To(storagev1.NoneFSGroupPolicy), "ext4", []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, false, false},
		{"default without fsType", nil, "", []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, false, false},
		{"default with fsType and RWO among modes", nil, "ext4", []v1.PersistentVolumeAccessMode{v1.ReadWriteMany, v1.ReadWriteOnce}, false, true},
		{"default with fsType and RWOP", ptr.To(storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy), "xfs", []v1.PersistentVolumeAccessMode{v1.ReadWriteOncePod}, false, true},
		{"default with fsType but RWX", nil, "ext4", []v1.PersistentVolumeAccessMode{v1.ReadWriteMany}, false, false},
		{"File but read-only", ptr.To(storagev1.FileFSGroupPolicy), "ext4", []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnvWithDriver(t, &fakeNodeService{stages: true, onPublish: volumeContents})
			env.addObjects(t, false)
			env.setFSGroupPolicy(t, tc.policy)
			pv := testPV("vol-p")
			pv.Spec.CSI.FSType, pv.Spec.AccessModes = tc.fsType, tc.modes

			target, err := env.m.SetUpPersistent(t.Context(), fsGroupPod("uid-p", nil), "data", pv, tc.readOnly)
			if err != nil {
				t.Fatal(err)
			}
			if g := callsOf[*csipb.NodePublishVolumeRequest](env.node)[0].GetVolumeCapability().GetMount().GetVolumeMountGroup(); g != "" {
				t.Errorf("VolumeMountGroup %q sent to a driver without VOLUME_MOUNT_GROUP", g)
			}
			dirs := []string{target, filepath.Join(target, "dir")}
			file := filepath.Join(target, "dir", "file")
			for _, p := range append(dirs, file) {
				if applied := gidOf(t, p) == testFSGroup; applied != tc.applied {
					t.Errorf("%s: gid %d, fsGroup applied = %v, want %v", p, gidOf(t, p), applied, tc.applied)
				}
			}
			if !tc.applied {
				return
			}
			for _, d := range dirs {
				if m := modeOf(t, d); m&os.ModeSetgid == 0 || m.Perm()&0o770 != 0o770 {
					t.Errorf("%s: mode %v, want setgid and group rwx", d, m)
				}
			}
			if m := modeOf(t, file); m.Perm() != 0o660 {
				t.Errorf("%s: mode %v, want 0660", file, m)
			}
		})
	}
}

func TestFSGroupOnRootMismatchSkipsMatchingVolume(t *testing.T) {
	requireRoot(t)
	// The volume's root is already the fsGroup's, a file inside is not.
	contents := func(target string) error {
		if err := os.Chown(target, -1, testFSGroup); err != nil {
			return err
		}
		if err := os.Chmod(target, 0o770|os.ModeSetgid); err != nil {
			return err
		}
		file := filepath.Join(target, "file")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			return err
		}
		return os.Chown(file, -1, os.Getegid()) // not the group the setgid root passed on
	}
	for _, tc := range []struct {
		policy  v1.PodFSGroupChangePolicy
		applied bool
	}{
		{v1.FSGroupChangeOnRootMismatch, false},
		{v1.FSGroupChangeAlways, true},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			env := newEnvWithDriver(t, &fakeNodeService{stages: true, onPublish: contents})
			env.addObjects(t, false)
			env.setFSGroupPolicy(t, ptr.To(storagev1.FileFSGroupPolicy))

			target, err := env.m.SetUpPersistent(t.Context(), fsGroupPod("uid-r", &tc.policy), "data", testPV("vol-r"), false)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(target, "file")
			if applied := gidOf(t, file) == testFSGroup; applied != tc.applied {
				t.Errorf("file inside: gid %d, walked = %v, want %v", gidOf(t, file), applied, tc.applied)
			}
		})
	}
}

func TestEphemeralVolumeGetsFSGroupWithFSType(t *testing.T) {
	requireRoot(t)
	env := newEnvWithDriver(t, &fakeNodeService{onPublish: volumeContents})
	d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver}, Spec: storagev1.CSIDriverSpec{
		VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral},
	}}
	if _, err := env.client.StorageV1().CSIDrivers().Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := fsGroupPod("uid-e1", nil)
	// Inline volumes count as ReadWriteOnce, so the default policy needs
	// only an fsType.
	for vol, fsType := range map[string]string{"with-fstype": "ext4", "without": ""} {
		src := &v1.CSIVolumeSource{Driver: testDriver}
		if fsType != "" {
			src.FSType = &fsType
		}
		target, err := env.m.SetUpEphemeral(t.Context(), pod, vol, src)
		if err != nil {
			t.Fatal(err)
		}
		if applied, want := gidOf(t, filepath.Join(target, "dir", "file")) == testFSGroup, fsType != ""; applied != want {
			t.Errorf("%s: fsGroup applied = %v, want %v", vol, applied, want)
		}
	}
}
