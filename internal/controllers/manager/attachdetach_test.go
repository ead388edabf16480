package manager

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/controllers/attachdetach"
)

// TestCSIAttachDetachAsServiceAccount runs the attach/detach controller as
// attachdetach-controller under the default policy: a pod on a node gets a
// VolumeAttachment for its CSI volume, the node reports it attached once
// the test (as the external attacher) says so, and the pod's deletion
// detaches it.
func TestCSIAttachDetachAsServiceAccount(t *testing.T) {
	url := startAuthServer(t)
	c := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, BearerToken: "admin", QPS: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = Run(ctx, Config{RESTConfig: &rest.Config{Host: url, BearerToken: "kcm", QPS: -1}, UseServiceAccountCredentials: true, Logger: quietLog()})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })

	const driver, handle = "csi.example.com", "vol-1"
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "csi-pv"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: handle}},
	}}
	if _, err := c.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim := claimOf("data", "", "1Gi")
	claim.Spec.VolumeName = "csi-pv"
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the claim bound", func() bool {
		got, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		return err == nil && got.Status.Phase == corev1.ClaimBound
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: corev1.PodSpec{
		NodeName:   "n1",
		Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
	}}
	// The ServiceAccount admission waits for the namespace's default account.
	eventually(t, "the pod created", func() bool {
		_, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		return err == nil
	})

	name := attachdetach.AttachmentName(handle, driver, "n1")
	eventually(t, "the VolumeAttachment", func() bool {
		va, err := c.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
		return err == nil && va.Spec.Attacher == driver && va.Spec.NodeName == "n1" &&
			ptr.Deref(va.Spec.Source.PersistentVolumeName, "") == "csi-pv"
	})
	// The external attacher's part.
	va, err := c.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	va.Status.Attached = true
	if _, err := c.StorageV1().VolumeAttachments().UpdateStatus(ctx, va, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the node reporting the volume attached", func() bool {
		n, err := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		return err == nil && len(n.Status.VolumesAttached) == 1 &&
			n.Status.VolumesAttached[0].Name == attachdetach.UniqueVolumeName(driver, handle)
	})

	if err := c.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the volume detached", func() bool {
		_, err := c.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
		n, nerr := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		return err != nil && nerr == nil && len(n.Status.VolumesAttached) == 0
	})
}
