package apis

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func subPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "busybox", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			}}},
			Volumes: []corev1.Volume{{Name: "data"}},
		},
		Status: corev1.PodStatus{QOSClass: corev1.PodQOSBurstable},
	}
}

func debugContainer(name string) corev1.EphemeralContainer {
	return corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: name, Image: "busybox"}, TargetContainerName: "app"}
}

func TestPrepareEphemeralContainersUpdateKeepsOnlyEphemeral(t *testing.T) {
	old := subPod()
	sent := old.DeepCopy()
	sent.Labels["app"] = "changed"
	sent.Spec.Containers[0].Image = "nginx"
	sent.Spec.EphemeralContainers = []corev1.EphemeralContainer{debugContainer("dbg")}
	got := PrepareEphemeralContainersUpdate(sent, old)
	if got.Labels["app"] != "x" || got.Spec.Containers[0].Image != "busybox" {
		t.Errorf("changes outside spec.ephemeralContainers were kept: labels %v, image %s", got.Labels, got.Spec.Containers[0].Image)
	}
	if len(got.Spec.EphemeralContainers) != 1 || got.Spec.EphemeralContainers[0].TerminationMessagePolicy != corev1.TerminationMessageReadFile {
		t.Errorf("ephemeral containers = %+v, want dbg, defaulted", got.Spec.EphemeralContainers)
	}
}

func TestValidateEphemeralContainersUpdate(t *testing.T) {
	existing := debugContainer("dbg")
	existing.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	for _, tc := range []struct {
		name string
		old  []corev1.EphemeralContainer
		mut  func(*corev1.Pod)
		want string
	}{
		{"add one", nil, func(p *corev1.Pod) { p.Spec.EphemeralContainers = []corev1.EphemeralContainer{debugContainer("dbg")} }, ""},
		{"name clash with a container", nil, func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{debugContainer("app")}
		}, "spec.ephemeralContainers[0].name:Duplicate"},
		{"unknown target", nil, func(p *corev1.Pod) {
			ec := debugContainer("dbg")
			ec.TargetContainerName = "nope"
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
		}, "spec.ephemeralContainers[0].targetContainerName:NotFound"},
		{"ports are refused", nil, func(p *corev1.Pod) {
			ec := debugContainer("dbg")
			ec.Ports = []corev1.ContainerPort{{ContainerPort: 80}}
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
		}, "spec.ephemeralContainers[0].ports:Forbidden"},
		{"resources are refused", nil, func(p *corev1.Pod) {
			ec := debugContainer("dbg")
			ec.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
		}, "spec.ephemeralContainers[0].resources:Forbidden"},
		{"subPath refused", nil, func(p *corev1.Pod) {
			ec := debugContainer("dbg")
			ec.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/d", SubPath: "x"}}
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
		}, "spec.ephemeralContainers[0].volumeMounts[0].subPath:Forbidden"},
		{"image required", nil, func(p *corev1.Pod) {
			ec := debugContainer("dbg")
			ec.Image = ""
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{ec}
		}, "spec.ephemeralContainers[0].image:Required"},
		{"removal refused", []corev1.EphemeralContainer{existing}, func(p *corev1.Pod) { p.Spec.EphemeralContainers = nil },
			"spec.ephemeralContainers:Forbidden"},
		{"change refused", []corev1.EphemeralContainer{existing}, func(p *corev1.Pod) { p.Spec.EphemeralContainers[0].Image = "alpine" },
			"spec.ephemeralContainers:Forbidden"},
	} {
		old := subPod()
		old.Spec.EphemeralContainers = tc.old
		pod := old.DeepCopy()
		tc.mut(pod)
		if got := fieldTypes(ValidateEphemeralContainersUpdate(pod, old)); got != tc.want {
			t.Errorf("%s: errors %q, want %q", tc.name, got, tc.want)
		}
	}
	static := subPod()
	static.Annotations = map[string]string{mirrorPodAnnotationKey: "x"}
	errs := ValidateEphemeralContainersUpdate(static, static)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "static pods do not support ephemeral containers") {
		t.Errorf("static pod: %v", errs)
	}
}

func TestPreparePodResizeKeepsOnlyResources(t *testing.T) {
	old := subPod()
	sent := old.DeepCopy()
	sent.Labels["app"] = "changed"
	sent.Spec.Containers[0].Image = "nginx"
	sent.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("150m")
	got := PreparePodResize(sent, old)
	if got.Labels["app"] != "x" || got.Spec.Containers[0].Image != "busybox" {
		t.Errorf("changes outside resources were kept: labels %v, image %s", got.Labels, got.Spec.Containers[0].Image)
	}
	if q := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; q.String() != "150m" {
		t.Errorf("cpu request = %s, want 150m", q.String())
	}
}

func TestValidatePodResize(t *testing.T) {
	cpu := func(p *corev1.Pod, req, lim string) {
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(req)
		p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse(lim)
	}
	for _, tc := range []struct {
		name string
		mut  func(*corev1.Pod)
		want string
	}{
		{"cpu up", func(p *corev1.Pod) { cpu(p, "200m", "400m") }, ""},
		{"QoS change refused", func(p *corev1.Pod) {
			cpu(p, "200m", "200m") // requests == limits for cpu and memory: Guaranteed
		}, "spec:Invalid"},
		{"request above limit", func(p *corev1.Pod) { cpu(p, "500m", "400m") }, "spec.containers[0].resources.requests:Invalid"},
		{"removing a limit refused", func(p *corev1.Pod) {
			delete(p.Spec.Containers[0].Resources.Limits, corev1.ResourceCPU)
		}, "spec.containers[0].resources.limits:Forbidden"},
		{"other resources immutable", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceEphemeralStorage] = resource.MustParse("1Gi")
		}, "spec:Forbidden"},
		{"containers may not be added", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "more", Image: "busybox"})
		}, "spec.containers:Forbidden"},
	} {
		old := subPod()
		pod := old.DeepCopy()
		tc.mut(pod)
		if got := fieldTypes(ValidatePodResize(pod, old)); got != tc.want {
			t.Errorf("%s: errors %q, want %q", tc.name, got, tc.want)
		}
	}
	// A running container whose status lacks resources is on a node that
	// cannot resize.
	old := subPod()
	old.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	pod := old.DeepCopy()
	cpu(pod, "200m", "400m")
	if got := fieldTypes(ValidatePodResize(pod, old)); got != "spec:Forbidden" {
		t.Errorf("node without resize support: errors %q, want spec:Forbidden", got)
	}
}

func TestComputePodQOS(t *testing.T) {
	res := func(req, lim string) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{}
		if req != "" {
			r.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(req), corev1.ResourceMemory: resource.MustParse(req + "Mi")}
		}
		if lim != "" {
			r.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(lim), corev1.ResourceMemory: resource.MustParse(lim + "Mi")}
		}
		return r
	}
	for _, tc := range []struct {
		name string
		rs   []corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		{"nothing", []corev1.ResourceRequirements{{}}, corev1.PodQOSBestEffort},
		{"equal", []corev1.ResourceRequirements{res("1", "1")}, corev1.PodQOSGuaranteed},
		{"requests only", []corev1.ResourceRequirements{res("1", "")}, corev1.PodQOSBurstable},
		{"guaranteed beside best effort", []corev1.ResourceRequirements{res("1", "1"), {}}, corev1.PodQOSBurstable},
	} {
		p := &corev1.Pod{}
		for i, r := range tc.rs {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: string(rune('a' + i)), Resources: r})
		}
		if got := ComputePodQOS(p); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
