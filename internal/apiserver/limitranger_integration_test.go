package apiserver_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

func TestLimitRangerAdmission(t *testing.T) {
	ctx := context.Background()
	s := startRBACServer(t)
	c := s.ClientWithToken("admin")
	const ns = "limits"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The ServiceAccount plugin refuses pods without the namespace's
	// "default" account.
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	q := resource.MustParse
	lr := &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "lr"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type:           corev1.LimitTypeContainer,
			Min:            corev1.ResourceList{corev1.ResourceCPU: q("50m")},
			Max:            corev1.ResourceList{corev1.ResourceCPU: q("1")},
			Default:        corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("256Mi")},
			DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("128Mi")},
		}, {
			Type: corev1.LimitTypePersistentVolumeClaim,
			Max:  corev1.ResourceList{corev1.ResourceStorage: q("1Gi")},
		}}},
	}
	if _, err := c.CoreV1().LimitRanges(ns).Create(ctx, lr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newPod := func(name string, requests corev1.ResourceList) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: requests},
			}}},
		}
	}

	// The plugin reads the watch cache: wait (with dry runs) for the
	// LimitRange to reach it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := c.CoreV1().Pods(ns).Create(ctx, newPod("probe", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatal(err)
		}
		if p.Annotations[admission.LimitRangerAnnotation] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("LimitRange never applied")
		}
		time.Sleep(20 * time.Millisecond)
	}

	p, err := c.CoreV1().Pods(ns).Create(ctx, newPod("defaulted", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Spec.Containers[0].Resources
	for name, want := range map[string]struct{ got, want resource.Quantity }{
		"cpu request":    {res.Requests[corev1.ResourceCPU], q("100m")},
		"memory request": {res.Requests[corev1.ResourceMemory], q("128Mi")},
		"cpu limit":      {res.Limits[corev1.ResourceCPU], q("500m")},
		"memory limit":   {res.Limits[corev1.ResourceMemory], q("256Mi")},
	} {
		if want.got.Cmp(want.want) != 0 {
			t.Errorf("%s = %s, want %s", name, want.got.String(), want.want.String())
		}
	}
	if got, want := p.Annotations[admission.LimitRangerAnnotation], "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"; got != want {
		t.Errorf("annotation = %q, want %q", got, want)
	}
	if p.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("QoS class = %q, want Burstable (computed after defaulting)", p.Status.QOSClass)
	}

	_, err = c.CoreV1().Pods(ns).Create(ctx, newPod("small", corev1.ResourceList{corev1.ResourceCPU: q("10m")}), metav1.CreateOptions{})
	if want := `pods "small" is forbidden: minimum cpu usage per Container is 50m, but request is 10m`; !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("small pod: err = %v, want Forbidden %q", err, want)
	}

	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "big"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: q("2Gi")}},
		},
	}
	_, err = c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{})
	if want := `persistentvolumeclaims "big" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi`; !apierrors.IsForbidden(err) || err.Error() != want {
		t.Errorf("big claim: err = %v, want Forbidden %q", err, want)
	}
}
