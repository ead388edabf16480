package apis

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// The expectations below follow upstream's documented rules (the
// validation of k8s.io/kubernetes v1.37 pkg/apis/*/validation): for each
// invalid object, the field path and type of the cause upstream reports.

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
	}
}

func vDeployment(mut func(*appsv1.Deployment)) runtime.Object {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: podTemplate(),
		},
	}
	if mut != nil {
		mut(d)
	}
	return d
}

func vJob(mut func(*batchv1.Job)) runtime.Object {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", UID: "0b7e5f5c-1"}, Spec: batchv1.JobSpec{Template: podTemplate()}}
	j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	if mut != nil {
		mut(j)
	}
	return j
}

func vCronJob(mut func(*batchv1.CronJob)) runtime.Object {
	c := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cj", Namespace: "ns"}, Spec: batchv1.CronJobSpec{
		Schedule:    "*/5 * * * *",
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate()}},
	}}
	c.Spec.JobTemplate.Spec.Template.Labels = nil
	c.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	if mut != nil {
		mut(c)
	}
	return c
}

func vPod(mut func(*corev1.Pod)) runtime.Object {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: podTemplate().Spec}
	if mut != nil {
		mut(p)
	}
	return p
}

func vService(mut func(*corev1.Service)) runtime.Object {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Port: 80}},
	}}
	if mut != nil {
		mut(s)
	}
	return s
}

func vNode(mut func(*corev1.Node)) runtime.Object {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	if mut != nil {
		mut(n)
	}
	return n
}

func vPDB(mut func(*policyv1.PodDisruptionBudget)) runtime.Object {
	p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "pdb", Namespace: "ns"}, Spec: policyv1.PodDisruptionBudgetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
	}}
	if mut != nil {
		mut(p)
	}
	return p
}

func intOrStr(s string) *intstr.IntOrString { v := intstr.Parse(s); return &v }

// cause is one expected error: its field path and type.
type cause struct {
	field string
	typ   field.ErrorType
}

func TestValidateAsUpstream(t *testing.T) {
	big := strings.Repeat("x", 1200*1024)
	for _, c := range []struct {
		name string
		obj  runtime.Object
		want []cause // empty: valid
	}{
		// Valid objects of each kind pass after defaulting.
		{"valid deployment", vDeployment(nil), nil},
		{"valid job", vJob(nil), nil},
		{"valid cronjob", vCronJob(nil), nil},
		{"valid pod", vPod(nil), nil},
		{"valid service", vService(nil), nil},
		// The conformance spec switching session affinity off: defaulting
		// drops the ClientIP configuration left behind.
		{"affinity None with a leftover config", vService(func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityNone
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](10)}}
		}), nil},
		{"valid node", vNode(func(n *corev1.Node) { n.Spec.PodCIDR = "10.0.1.0/24" }), nil},
		{"valid pdb", vPDB(func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = intOrStr("50%") }), nil},

		// The cases users hit.
		{"maxSurge abc%", vDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: intOrStr("abc%")}
		}), []cause{{"spec.strategy.rollingUpdate.maxSurge", field.ErrorTypeInvalid}}},
		{"strategy Bogus", vDeployment(func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "Bogus" }),
			[]cause{{"spec.strategy", field.ErrorTypeNotSupported}}},
		{"maxSurge and maxUnavailable 0", vDeployment(func(d *appsv1.Deployment) {
			zero := intstr.FromInt32(0)
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: &zero}
		}), []cause{{"spec.strategy.rollingUpdate.maxUnavailable", field.ErrorTypeInvalid}}},
		{"progressDeadline <= minReady", vDeployment(func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds = 700
		}), []cause{{"spec.progressDeadlineSeconds", field.ErrorTypeInvalid}}},
		{"cron schedule bogus", vCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "bogus schedule" }),
			[]cause{{"spec.schedule", field.ErrorTypeInvalid}}},
		{"cron TZ in schedule", vCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" }),
			[]cause{{"spec.schedule", field.ErrorTypeInvalid}}},
		{"cron time zone Mars", vCronJob(func(c *batchv1.CronJob) { c.Spec.TimeZone = ptr.To("Mars/Olympus") }),
			[]cause{{"spec.timeZone", field.ErrorTypeInvalid}}},
		{"cron concurrencyPolicy", vCronJob(func(c *batchv1.CronJob) { c.Spec.ConcurrencyPolicy = "Sometimes" }),
			[]cause{{"spec.concurrencyPolicy", field.ErrorTypeNotSupported}}},
		{"cron name too long", vCronJob(func(c *batchv1.CronJob) { c.Name = strings.Repeat("a", 53) }),
			[]cause{{"metadata.name", field.ErrorTypeInvalid}}},
		{"completionMode Bogus", vJob(func(j *batchv1.Job) { j.Spec.CompletionMode = ptr.To[batchv1.CompletionMode]("Bogus") }),
			[]cause{{"spec.completionMode", field.ErrorTypeNotSupported}}},
		{"job without restartPolicy", vJob(func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = "" }),
			[]cause{{"spec.template.spec.restartPolicy", field.ErrorTypeRequired}}},
		{"job negative backoffLimit", vJob(func(j *batchv1.Job) { j.Spec.BackoffLimit = ptr.To[int32](-1) }),
			[]cause{{"spec.backoffLimit", field.ErrorTypeInvalid}}},
		{"indexed job needs completions", vJob(func(j *batchv1.Job) {
			j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
			j.Spec.Parallelism = ptr.To[int32](2)
		}), []cause{{"spec.completions", field.ErrorTypeRequired}}},
		{"pdb minAvailable abc%", vPDB(func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = intOrStr("abc%") }),
			[]cause{{"spec.minAvailable", field.ErrorTypeInvalid}}},
		{"node podCIDR garbage", vNode(func(n *corev1.Node) { n.Spec.PodCIDR = "garbage" }),
			[]cause{{"spec.podCIDRs[0]", field.ErrorTypeInvalid}}},
		{"service externalIPs garbage", vService(func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"garbage"} }),
			[]cause{{"spec.externalIPs[0]", field.ErrorTypeInvalid}}},
		{"cpu request -1", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}
		}), []cause{{"spec.containers[0].resources.requests[cpu]", field.ErrorTypeInvalid}}},
		{"request above limit", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
			}
		}), []cause{{"spec.containers[0].resources.requests", field.ErrorTypeInvalid}}},
		{"non-standard resource", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"gpu": resource.MustParse("1")}
		}), []cause{{"spec.containers[0].resources.limits[gpu]", field.ErrorTypeInvalid}, {"spec.containers[0].resources.limits[gpu]", field.ErrorTypeInvalid}}},
		{"template cpu -1", vDeployment(func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}
		}), []cause{{"spec.template.spec.containers[0].resources.limits[cpu]", field.ErrorTypeInvalid}}},
		{"configmap over 1MiB", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Data: map[string]string{"k": big}},
			// field.NewPath("") renders as "[]": the whole object.
			[]cause{{"[]", field.ErrorTypeTooLong}}},
		{"secret over 1MiB", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"k": []byte(big)}},
			[]cause{{"data", field.ErrorTypeTooLong}}},

		// Broader pod spec rules.
		{"duplicate container", vPod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c", Image: "x"})
		}), []cause{{"spec.containers[1].name", field.ErrorTypeDuplicate}}},
		{"no image", vPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }),
			[]cause{{"spec.containers[0].image", field.ErrorTypeRequired}}},
		{"bad container port", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}}
		}), []cause{{"spec.containers[0].ports[0].containerPort", field.ErrorTypeInvalid}}},
		{"bad protocol", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "ICMP"}}
		}), []cause{{"spec.containers[0].ports[0].protocol", field.ErrorTypeNotSupported}}},
		{"mount of unknown volume", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}
		}), []cause{{"spec.containers[0].volumeMounts[0].name", field.ErrorTypeNotFound}}},
		// Defaulting makes a volume without a source an emptyDir.
		{"volume without source", vPod(func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "v"}} }), nil},
		{"volume with two sources", vPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{}, ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}}
		}), []cause{{"spec.volumes[0].configMap", field.ErrorTypeForbidden}}},
		// The conformance spec "Sysctls should reject invalid sysctls".
		{"invalid sysctl names", vPod(func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{
				{Name: "foo-", Value: "bar"}, {Name: "kernel.shmmax", Value: "1"},
				{Name: "safe-and-unsafe", Value: "1"}, {Name: "bar..", Value: "42"}, {Name: "kernel.shmmax", Value: "2"},
			}}
		}), []cause{
			{"spec.securityContext.sysctls[0].name", field.ErrorTypeInvalid},
			{"spec.securityContext.sysctls[3].name", field.ErrorTypeInvalid},
			{"spec.securityContext.sysctls[4].name", field.ErrorTypeDuplicate},
		}},
		{"slash-separated sysctl", vPod(func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net/ipv4/ip_local_port_range", Value: "1024 65535"}}}
		}), nil},
		// Every HTTPGetAction is defaulted, hooks' as well as probes'.
		{"postStart httpGet without scheme", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
				HTTPGet: &corev1.HTTPGetAction{Path: "/echo", Port: intstr.FromInt32(8080)}}}
		}), nil},
		{"dnsPolicy bogus", vPod(func(p *corev1.Pod) { p.Spec.DNSPolicy = "Bogus" }),
			[]cause{{"spec.dnsPolicy", field.ErrorTypeNotSupported}}},
		{"env var name", vPod(func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A=B"}} }),
			[]cause{{"spec.containers[0].env[0].name", field.ErrorTypeInvalid}}},
		{"probe without handler", vPod(func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{} }),
			[]cause{{"spec.containers[0].readinessProbe", field.ErrorTypeRequired}}},
		{"hostname not a label", vPod(func(p *corev1.Pod) { p.Spec.Hostname = "Not_Valid" }),
			[]cause{{"spec.hostname", field.ErrorTypeInvalid}}},
		{"activeDeadlineSeconds 0", vPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](0) }),
			[]cause{{"spec.activeDeadlineSeconds", field.ErrorTypeInvalid}}},
		{"runAsUser negative", vPod(func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](-1)}
		}), []cause{{"spec.securityContext.runAsUser", field.ErrorTypeInvalid}}},
		{"template label value", vDeployment(func(d *appsv1.Deployment) {
			d.Spec.Template.Labels["bad"] = "a b"
		}), []cause{{"spec.template.labels", field.ErrorTypeInvalid}}},

		// Services.
		{"service type Bogus", vService(func(s *corev1.Service) { s.Spec.Type = "Bogus" }),
			[]cause{{"spec.type", field.ErrorTypeNotSupported}}},
		{"service duplicate port", vService(func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "b", Port: 80}}
		}), []cause{{"spec.ports[1]", field.ErrorTypeDuplicate}}},
		{"service loopback externalIP", vService(func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"127.0.0.1"} }),
			[]cause{{"spec.externalIPs[0]", field.ErrorTypeInvalid}}},
		{"nodePort on ClusterIP", vService(func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30001 }),
			[]cause{{"spec.ports[0].nodePort", field.ErrorTypeForbidden}}},

		// Workloads.
		{"statefulset podManagementPolicy", &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: podTemplate(), PodManagementPolicy: "Sometimes"}},
			[]cause{{"spec.podManagementPolicy", field.ErrorTypeInvalid}}},
		{"daemonset both surge and unavailable", &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: podTemplate(),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxSurge: intOrStr("1")}}}},
			[]cause{{"spec.updateStrategy.rollingUpdate.maxSurge", field.ErrorTypeInvalid}}},
		{"replicaset restartPolicy", &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: func() corev1.PodTemplateSpec {
				t := podTemplate()
				t.Spec.RestartPolicy = corev1.RestartPolicyNever
				return t
			}()}},
			[]cause{{"spec.template.spec.restartPolicy", field.ErrorTypeNotSupported}}},
		{"node taint effect", vNode(func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: "Sometimes"}} }),
			[]cause{{"metadata.taints[0].effect", field.ErrorTypeNotSupported}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			Default(c.obj)
			errs := Validate(c.obj)
			if len(errs) != len(c.want) {
				t.Fatalf("got %d errors %v, want %v", len(errs), errs, c.want)
			}
			for i, w := range c.want {
				if errs[i].Field != w.field || errs[i].Type != w.typ {
					t.Errorf("error %d: got %s %q (%v), want %s %q", i, errs[i].Type, errs[i].Field, errs[i], w.typ, w.field)
				}
			}
		})
	}
}

// TestDataSizeMessage checks the wording for oversized data, which
// apimachinery's field.TooLong gives upstream and us alike.
func TestDataSizeMessage(t *testing.T) {
	cm := &corev1.ConfigMap{Data: map[string]string{"k": strings.Repeat("x", maxDataSize+1)}}
	errs := Validate(cm)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "may not be more than 1048576 bytes") {
		t.Fatalf("got %v", errs)
	}
}

func TestValidateUpdateAsUpstream(t *testing.T) {
	oldJob := vJob(nil).(*batchv1.Job)
	Default(oldJob)
	changed := oldJob.DeepCopy()
	changed.Spec.Template.Spec.Containers[0].Image = "nginx:2"

	oldSTS := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: appsv1.StatefulSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: podTemplate(), ServiceName: "a"}}
	Default(oldSTS)
	newSTS := oldSTS.DeepCopy()
	newSTS.Spec.ServiceName = "b"
	scaled := oldSTS.DeepCopy()
	scaled.Spec.Replicas = ptr.To[int32](5)

	oldPod := vPod(nil).(*corev1.Pod)
	Default(oldPod)
	newImage := oldPod.DeepCopy()
	newImage.Spec.Containers[0].Image = "nginx:2"
	newPort := oldPod.DeepCopy()
	newPort.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}}

	for _, c := range []struct {
		name     string
		obj, old runtime.Object
		want     []cause
	}{
		{"job template frozen", changed, oldJob, []cause{{"spec.template", field.ErrorTypeInvalid}}},
		{"statefulset serviceName frozen", newSTS, oldSTS, []cause{{"spec.serviceName", field.ErrorTypeInvalid}}},
		{"statefulset may scale", scaled, oldSTS, nil},
		{"pod image may change", newImage, oldPod, nil},
		{"pod ports frozen", newPort, oldPod, []cause{{"spec", field.ErrorTypeForbidden}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			errs := ValidateUpdate(c.obj, c.old)
			if len(errs) != len(c.want) {
				t.Fatalf("got %v, want %v", errs, c.want)
			}
			for i, w := range c.want {
				if errs[i].Field != w.field || errs[i].Type != w.typ {
					t.Errorf("error %d: got %s %q, want %s %q", i, errs[i].Type, errs[i].Field, w.typ, w.field)
				}
			}
		})
	}
}
