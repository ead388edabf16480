package quota

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func list(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func requests(kv ...string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: list(kv...)}
}

// sameUsage compares two lists by quantity, as quota does.
func sameUsage(t *testing.T, got, want corev1.ResourceList) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("usage %v, want %v", got, want)
		return
	}
	for n, q := range want {
		if g, ok := got[n]; !ok || g.Cmp(q) != 0 {
			t.Errorf("%s = %v, want %v (usage %v)", n, got[n], q.String(), got)
		}
	}
}

// A pod is charged its effective requests as the scheduler sees them: the
// larger of its containers' sum and its biggest init phase, plus overhead;
// limits only where set. Hand-computed from the Kubernetes rules.
func TestPodUsage(t *testing.T) {
	now := time.Now()
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "i1", Resources: requests("cpu", "500m")}},
		Containers: []corev1.Container{
			{Name: "c1", Resources: corev1.ResourceRequirements{Requests: list("cpu", "100m", "memory", "64Mi"), Limits: list("cpu", "200m")}},
			{Name: "c2", Resources: requests("cpu", "200m")},
		},
		Overhead: list("cpu", "10m"),
	}}
	sameUsage(t, Usage(podsGR, pod, now), list(
		"requests.cpu", "510m", "cpu", "510m", // max(100m+200m, 500m) + 10m
		"requests.memory", "64Mi", "memory", "64Mi",
		"limits.cpu", "210m", // c1's limit + overhead
		"pods", "1", "count/pods", "1",
	))

	// A sidecar runs beside every later init container and the app.
	sidecar := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "s", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Resources: requests("cpu", "100m")},
			{Name: "i", Resources: requests("cpu", "300m")},
		},
		Containers: []corev1.Container{{Name: "c", Resources: requests("cpu", "100m")}},
	}}
	if got := Usage(podsGR, sidecar, now)["requests.cpu"]; got.Cmp(resource.MustParse("400m")) != 0 {
		t.Errorf("requests.cpu with a sidecar = %v, want 400m (sidecar 100m + init 300m)", got.String())
	}

	// Pods that hold nothing any more are not charged, not even a count.
	done := pod.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	sameUsage(t, Usage(podsGR, done, now), corev1.ResourceList{})
	gone := pod.DeepCopy()
	gone.DeletionTimestamp = &metav1.Time{Time: now.Add(-time.Minute)}
	gone.DeletionGracePeriodSeconds = ptr.To[int64](30)
	sameUsage(t, Usage(podsGR, gone, now), corev1.ResourceList{})
	gone.DeletionGracePeriodSeconds = ptr.To[int64](300)
	if _, charged := Usage(podsGR, gone, now)["pods"]; !charged {
		t.Error("a pod still within its grace period is not charged")
	}
}

func TestServiceAndClaimUsage(t *testing.T) {
	now := time.Now()
	nodePort := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}, {Port: 443}}}}
	sameUsage(t, Usage(servicesGR, nodePort, now), list("services.nodeports", "2", "services", "1", "count/services", "1"))

	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
		Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080}, {Port: 443}}}}
	sameUsage(t, Usage(servicesGR, lb, now), list("services.loadbalancers", "1", "services.nodeports", "1", "services", "1", "count/services", "1"))

	// A claim being resized is charged the larger of request and allocation.
	claim := &corev1.PersistentVolumeClaim{
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast"),
			Resources: corev1.VolumeResourceRequirements{Requests: list("storage", "1Gi")}},
		Status: corev1.PersistentVolumeClaimStatus{AllocatedResources: list("storage", "2Gi")},
	}
	sameUsage(t, Usage(pvcsGR, claim, now), list(
		"requests.storage", "2Gi", "fast.storageclass.storage.k8s.io/requests.storage", "2Gi",
		"fast.storageclass.storage.k8s.io/persistentvolumeclaims", "1", "persistentvolumeclaims", "1", "count/persistentvolumeclaims", "1",
	))
}

func TestQuotaNames(t *testing.T) {
	deployments := schema.GroupResource{Group: "apps", Resource: "deployments"}
	if got := CountName(deployments); got != "count/deployments.apps" {
		t.Errorf("CountName = %s", got)
	}
	for name, want := range map[corev1.ResourceName]schema.GroupResource{
		"count/deployments.apps": deployments, "pods": podsGR, "count/widgets.example.com": {Group: "example.com", Resource: "widgets"},
	} {
		if got, ok := CountedResource(name); !ok || got != want {
			t.Errorf("CountedResource(%s) = %v %v, want %v", name, got, ok, want)
		}
	}
	if !Matches(podsGR, list("limits.memory", "1Gi")) || Matches(servicesGR, list("limits.memory", "1Gi")) {
		t.Error("limits.memory should concern pods alone")
	}
	if !Matches(pvcsGR, list("gold.storageclass.storage.k8s.io/requests.storage", "1Gi")) {
		t.Error("a storage class's requests.storage should concern claims")
	}
}
