package manager

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

func claimOf(name, class, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeClaimSpec{
		StorageClassName: ptr.To(class),
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
	}}
}

// claimEvent reports whether the claim has an event with reason whose
// message contains msg.
func claimEvent(ctx context.Context, c kubernetes.Interface, claim, reason, msg string) bool {
	evs, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == claim && e.Reason == reason && strings.Contains(e.Message, msg) {
			return true
		}
	}
	return false
}

// TestLocalPathLifecycle plays the scheduler (selected-node) and the
// kubelet (the helper pod's success): the provisioner makes the volume on
// the chosen node, the binder binds it, and deleting the claim removes the
// data through a helper pod, then the volume.
func TestLocalPathLifecycle(t *testing.T) {
	c, ctx := startManager(t)
	testLocalPathLifecycle(t, ctx, c, false)
}

// TestStorageControllersRunAsServiceAccounts runs the same story against
// the default policy and admission (protection finalizers, default class):
// each storage controller's role must allow what it does.
func TestStorageControllersRunAsServiceAccounts(t *testing.T) {
	url := startAuthServer(t)
	admin := kubernetes.NewForConfigOrDie(&rest.Config{Host: url, BearerToken: "admin", QPS: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = Run(ctx, Config{RESTConfig: &rest.Config{Host: url, BearerToken: "kcm", QPS: -1}, UseServiceAccountCredentials: true, Logger: quietLog()})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	testLocalPathLifecycle(t, ctx, admin, true)
}

func testLocalPathLifecycle(t *testing.T, ctx context.Context, c kubernetes.Interface, admission bool) {
	eventually(t, "the default StorageClass", func() bool {
		sc, err := c.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
		return err == nil && sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" &&
			sc.Provisioner == "skiff.dev/local-path" && *sc.VolumeBindingMode == "WaitForFirstConsumer"
	})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1"},
		Annotations: map[string]string{"skiff.dev/local-path-dir": "/srv/skiff/storage"}}}
	if _, err := c.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newClaim := claimOf("data", "local-path", "1Gi")
	if admission {
		newClaim.Spec.StorageClassName = nil // DefaultStorageClass sets it
	}
	pvc, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, newClaim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if admission && (pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "local-path" ||
		!slices.Contains(pvc.Finalizers, "kubernetes.io/pvc-protection")) {
		t.Fatalf("admitted claim %+v", pvc)
	}
	eventually(t, "the claim handed to the provisioner, waiting for a consumer", func() bool {
		got, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		return err == nil && got.Annotations["volume.kubernetes.io/storage-provisioner"] == "skiff.dev/local-path" &&
			got.Status.Phase == corev1.ClaimPending &&
			claimEvent(ctx, c, "data", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
	})
	if _, err := c.CoreV1().PersistentVolumes().Get(ctx, "pvc-"+string(pvc.UID), metav1.GetOptions{}); err == nil {
		t.Fatal("a volume was provisioned before the scheduler chose a node")
	}
	// The scheduler's part.
	got, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Annotations["volume.kubernetes.io/selected-node"] = "n1"
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvName := "pvc-" + string(pvc.UID)
	eventually(t, "claim and volume bound", func() bool {
		claim, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		if err != nil || claim.Status.Phase != corev1.ClaimBound || claim.Spec.VolumeName != pvName ||
			claim.Annotations["pv.kubernetes.io/bind-completed"] != "yes" {
			return false
		}
		pv, err := c.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
		return err == nil && pv.Status.Phase == corev1.VolumeBound
	})
	pv, _ := c.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != "/srv/skiff/storage/"+string(pvc.UID) {
		t.Fatalf("volume source %+v", pv.Spec.PersistentVolumeSource)
	}
	if r := pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0]; r.Key != "kubernetes.io/hostname" || r.Values[0] != "n1" {
		t.Fatalf("node affinity %+v", r)
	}
	if pv.Annotations["pv.kubernetes.io/provisioned-by"] != "skiff.dev/local-path" || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Fatalf("volume %+v", pv.ObjectMeta)
	}

	// Deleting the claim: the volume is released and a helper pod on n1
	// removes the directory; the test stands in for the kubelet.
	if err := c.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var helper *corev1.Pod
	eventually(t, "the helper pod", func() bool {
		helper, err = c.CoreV1().Pods("kube-system").Get(ctx, "delete-"+pvName, metav1.GetOptions{})
		return err == nil
	})
	if helper.Spec.NodeName != "n1" || helper.Spec.Volumes[0].HostPath.Path != "/srv/skiff/storage" ||
		strings.Join(helper.Spec.Containers[0].Command, " ") != "rm -rf /data/"+string(pvc.UID) {
		t.Fatalf("helper pod spec %+v", helper.Spec)
	}
	if _, err := c.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{}); err != nil {
		t.Fatalf("volume gone before its data: %v", err)
	}
	helper.Status.Phase = corev1.PodSucceeded
	if _, err := c.CoreV1().Pods("kube-system").UpdateStatus(ctx, helper, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "volume and helper pod deleted", func() bool {
		_, errPV := c.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
		_, errPod := c.CoreV1().Pods("kube-system").Get(ctx, "delete-"+pvName, metav1.GetOptions{})
		return errPV != nil && errPod != nil
	})
}

// TestStaticBindingAndBadClass: the smallest fitting volume of the claim's
// class is bound; a claim of an unknown class stays Pending with an event.
func TestStaticBindingAndBadClass(t *testing.T) {
	c, ctx := startManager(t)
	for name, size := range map[string]string{"big": "5Gi", "small": "2Gi", "tiny": "500Mi"} {
		pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
			StorageClassName:       "manual",
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/" + name}},
		}}
		if _, err := c.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, claimOf("want1g", "manual", "1Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, claimOf("nope", "no-such-class", "1Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the 1Gi claim bound to the 2Gi volume", func() bool {
		claim, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "want1g", metav1.GetOptions{})
		if err != nil || claim.Status.Phase != corev1.ClaimBound || claim.Spec.VolumeName != "small" {
			return false
		}
		pv, err := c.CoreV1().PersistentVolumes().Get(ctx, "small", metav1.GetOptions{})
		return err == nil && pv.Status.Phase == corev1.VolumeBound && pv.Annotations["pv.kubernetes.io/bound-by-controller"] == "yes" &&
			pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.UID == claim.UID
	})
	eventually(t, "the unknown class reported", func() bool {
		return claimEvent(ctx, c, "nope", "ProvisioningFailed", `storageclass.storage.k8s.io "no-such-class" not found`)
	})
	claim, _ := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "nope", metav1.GetOptions{})
	if claim.Spec.VolumeName != "" {
		t.Fatalf("claim of an unknown class bound to %s", claim.Spec.VolumeName)
	}
	// Retain: deleting the claim leaves the volume Released.
	if err := c.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "want1g", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retained volume Released", func() bool {
		pv, err := c.CoreV1().PersistentVolumes().Get(ctx, "small", metav1.GetOptions{})
		return err == nil && pv.Status.Phase == corev1.VolumeReleased
	})
}
