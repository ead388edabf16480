package kubelet

import (
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/kubelet/csi"
)

// CSI volumes, inline or through a claim, reach the CSI manager, which
// needs their driver registered (package csi tests the rest).
func TestCSIVolumesGoToTheirDriver(t *testing.T) {
	pv := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv1"}, Spec: v1.PersistentVolumeSpec{
		PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "d.example.com", VolumeHandle: "h"}},
	}}
	pvc := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c1", Namespace: "ns"}, Spec: v1.PersistentVolumeClaimSpec{VolumeName: "pv1"}}
	client := fake.NewClientset(pv, pvc)
	dir := t.TempDir()
	v := &podVolumes{podsDir: filepath.Join(dir, "pods"), client: client,
		csi: csi.New(csi.Config{Client: client, NodeName: "n1", DataDir: dir, PodsDir: filepath.Join(dir, "pods")})}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}}
	for name, src := range map[string]v1.VolumeSource{
		"claim":  {PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c1"}},
		"inline": {CSI: &v1.CSIVolumeSource{Driver: "d.example.com"}},
	} {
		_, err := v.setupVolume(t.Context(), pod, &v1.Volume{Name: name, VolumeSource: src}, -1)
		if err == nil || !strings.Contains(err.Error(), "d.example.com not found in the list of registered CSI drivers") {
			t.Errorf("%s: err = %v, want the CSI manager's unregistered-driver error", name, err)
		}
	}
	if err := v.teardownVolumes(t.Context(), pod.UID); err != nil {
		t.Fatal(err)
	}
}

// A Block CSI claim in volumeDevices is mapped by the CSI manager, and its
// failures are worded as upstream's MapVolume ones.
func TestCSIBlockVolumeGoesToItsDriver(t *testing.T) {
	pv := csiPV("pv1", ptr.To(v1.PersistentVolumeBlock))
	pvc := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c1", Namespace: "ns"}, Spec: v1.PersistentVolumeClaimSpec{VolumeName: "pv1"}}
	client := fake.NewClientset(pv, pvc)
	dir := t.TempDir()
	v := &podVolumes{podsDir: filepath.Join(dir, "pods"), client: client,
		csi: csi.New(csi.Config{Client: client, NodeName: "n1", DataDir: dir, PodsDir: filepath.Join(dir, "pods")})}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{
		Volumes:    []v1.Volume{{Name: "dev", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c1"}}}},
		Containers: []v1.Container{{Name: "app", VolumeDevices: []v1.VolumeDevice{{Name: "dev", DevicePath: "/dev/xvda"}}}},
	}}
	_, err := v.setupVolumes(t.Context(), pod)
	want := `MapVolume.MapPodDevice failed for volume "dev": `
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "d.example.com not found in the list of registered CSI drivers") {
		t.Errorf("err = %v, want %q and the CSI manager's unregistered-driver error", err, want)
	}
	if err := v.teardownVolumes(t.Context(), pod.UID); err != nil {
		t.Fatal(err)
	}
}
