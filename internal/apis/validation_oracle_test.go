package apis

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagev1 "k8s.io/api/storage/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// summary lists errors as "field Type: detail", in order: the form the
// differential test compares causes in.
func summary(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Field+" "+strings.TrimPrefix(string(e.Type), "FieldValue")+": "+e.Detail)
	}
	return out
}

func vIngress(mut func(*networkingv1.Ingress)) runtime.Object {
	prefix := networkingv1.PathTypePrefix
	i := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "ing", Namespace: "ns"}, Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{Host: "example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/api", PathType: &prefix, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "svc", Port: networkingv1.ServiceBackendPort{Number: 80}}}}},
		}}}},
	}}
	mut(i)
	return i
}

func vNetworkPolicy(mut func(*networkingv1.NetworkPolicy)) runtime.Object {
	n := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: "ns"}, Spec: networkingv1.NetworkPolicySpec{
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}}},
	}}
	mut(n)
	return n
}

func vSlice(mut func(*discoveryv1.EndpointSlice)) runtime.Object {
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "eps", Namespace: "ns"}, AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.2.3"}}}}
	mut(s)
	return s
}

func vEventsV1(mut func(*eventsv1.Event)) runtime.Object {
	e := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "ev", Namespace: "ns"}, EventTime: metav1.NowMicro(),
		ReportingController: "example.com/c", ReportingInstance: "i", Action: "Started", Reason: "Started", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "ns"}}
	mut(e)
	return e
}

// TestValidateAsObserved holds cases whose expected answers come from
// upstream kube-apiserver v1.37.2, as the differential test observed them.
func TestValidateAsObserved(t *testing.T) {
	const dnsSubdomain = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
	for _, c := range []struct {
		name string
		obj  runtime.Object
		want []string
	}{
		// Defaulting that makes objects valid.
		{"job with pod failure policy defaults replacement to Failed", vJob(func(j *batchv1.Job) {
			j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{}
		}), nil},
		{"service ClientIP affinity gets a timeout", vService(func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		}), nil},
		{"volume of no type is an emptyDir", vPod(func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "v"}} }), nil},
		{"negative grace period becomes 1", vPod(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1) }), nil},
		{"podCIDR wins over podCIDRs", vNode(func(n *corev1.Node) {
			n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.0.0.0/24", []string{"garbage"}
		}), nil},
		{"rolebinding roleRef group defaulted", &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rb", Namespace: "ns"},
			RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "r"}}, nil},
		{"storage class defaults", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "example.com/p"}, nil},
		{"HPA may scale to zero", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptr.To[int32](0) }), nil},

		// Order: upstream's declarative checks come after the others.
		{"cronjob without spec", &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cj", Namespace: "ns"}}, []string{
			"spec.jobTemplate.spec.template.spec.containers Required: ",
			"spec.jobTemplate.spec.template.spec.restartPolicy Required: valid values: \"OnFailure\", \"Never\"",
			"spec.schedule Required: ",
		}},
		{"HPA negative bounds", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.MinReplicas, h.Spec.MaxReplicas = ptr.To[int32](-1), -1
		}), []string{
			"spec.minReplicas Invalid: must be greater than or equal to 0",
			"spec.maxReplicas Invalid: must be greater than or equal to 1",
		}},
		{"role rule without verbs", &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}}}}, []string{"rules[0].verbs Required: "}},

		// Errors reported once, or twice, as upstream does.
		{"statefulset template labels once", &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: func() corev1.PodTemplateSpec {
				t := podTemplate()
				t.Labels["k"] = strings.Repeat("v", 64)
				return t
			}()}}, []string{"spec.template.labels Invalid: must be no more than 63 bytes"}},
		{"endpoints bad address twice", &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "x"}}}}}, []string{
			"subsets[0].addresses[0].ip Invalid: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
			"subsets[0].addresses[0].ip Invalid: must be a valid IP address",
		}},
		{"replication controller selector labels not checked", &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "ns"},
			Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": "web", "bad key!": "v"}, Template: ptr.To(podTemplate())}},
			[]string{"spec.template.metadata.labels Invalid: `selector` does not match template `labels`"}},

		// Pods.
		{"env fieldRef path", vPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "bogus"}}}}
		}), []string{"spec.containers[0].env[0].valueFrom.fieldRef.fieldPath Invalid: error converting fieldPath: field label not supported: bogus"}},
		{"toleration effect", vPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: "Bogus"}}
		}), []string{"spec.tolerations[0].effect NotSupported: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""}},
		{"toleration key", vPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "Invalid_Value!", Operator: corev1.TolerationOpExists}}
		}), []string{"spec.tolerations[0].key Invalid: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"}},

		// Networking.
		{"ingress without rules", vIngress(func(i *networkingv1.Ingress) { i.Spec.Rules = nil }),
			[]string{"spec Invalid: either `defaultBackend` or `rules` must be specified"}},
		{"ingress path without type", vIngress(func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].PathType = nil }),
			[]string{"spec.rules[0].http.paths[0].pathType Required: pathType must be specified"}},
		{"ingress backend without port", vIngress(func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port = networkingv1.ServiceBackendPort{}
		}), []string{"spec.rules[0].http.paths[0].backend Required: port name or number is required"}},
		{"ingress relative path", vIngress(func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Path = "api" }),
			[]string{"spec.rules[0].http.paths[0].path Invalid: must be an absolute path"}},
		{"ingress class controller", &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, []string{"spec.controller Required: "}},
		{"network policy peer", vNetworkPolicy(func(n *networkingv1.NetworkPolicy) { n.Spec.Ingress[0].From[0].IPBlock = nil }),
			[]string{"spec.ingress[0].from[0] Required: must specify a peer"}},
		{"network policy cidr", vNetworkPolicy(func(n *networkingv1.NetworkPolicy) { n.Spec.Ingress[0].From[0].IPBlock.CIDR = "x" }),
			[]string{"spec.ingress[0].from[0].ipBlock.cidr Invalid: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"}},
		{"network policy type", vNetworkPolicy(func(n *networkingv1.NetworkPolicy) { n.Spec.PolicyTypes = []networkingv1.PolicyType{"Bogus"} }),
			[]string{"spec.policyTypes[0] NotSupported: supported values: \"Ingress\", \"Egress\""}},
		{"network policy port", vNetworkPolicy(func(n *networkingv1.NetworkPolicy) {
			n.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(-1))}}
		}), []string{"spec.ingress[0].ports[0].port Invalid: must be between 1 and 65535, inclusive"}},
		{"endpointslice address type", vSlice(func(s *discoveryv1.EndpointSlice) { s.AddressType = "Bogus" }),
			[]string{"addressType NotSupported: supported values: \"FQDN\", \"IPv4\", \"IPv6\""}},
		{"endpointslice without addresses", vSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = nil }),
			[]string{"endpoints[0].addresses Required: "}},
		{"endpointslice bad address", vSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses[0] = "x" }),
			[]string{"endpoints[0].addresses[0] Invalid: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"}},
		{"endpointslice port protocol", vSlice(func(s *discoveryv1.EndpointSlice) {
			s.Ports = []discoveryv1.EndpointPort{{Protocol: ptr.To[corev1.Protocol]("Bogus")}}
		}), []string{"ports[0].protocol NotSupported: supported values: \"SCTP\", \"TCP\", \"UDP\""}},

		// Coordination and events.
		{"lease duration", &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "l", Namespace: "ns"},
			Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: ptr.To[int32](-1)}}, []string{"spec.leaseDurationSeconds Invalid: must be greater than 0"}},
		{"event of another namespace", &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p"}}, []string{"involvedObject.namespace Invalid: does not match event.namespace"}},
		{"events.k8s.io without reporting controller", vEventsV1(func(e *eventsv1.Event) { e.ReportingController = "" }), []string{
			"reportingController Required: ",
			"reportingController Invalid: name part must be non-empty",
			"reportingController Invalid: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
		}},
		{"events.k8s.io type", vEventsV1(func(e *eventsv1.Event) { e.Type = "Bogus" }), []string{"type Invalid: has invalid value: Bogus"}},
		{"events.k8s.io without time", vEventsV1(func(e *eventsv1.Event) { e.EventTime = metav1.MicroTime{} }), []string{"eventTime Required: "}},

		// Core resources.
		{"limit type", &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "lr", Namespace: "ns"},
			Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: "Bogus"}}}}, []string{"spec.limits[0].type Invalid: must be a standard limit type or fully qualified"}},
		{"limit defaults above max", &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "lr", Namespace: "ns"},
			Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
				Max:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")},
				Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
				DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}, []string{
			"spec.limits[0].defaultRequest[cpu] Invalid: default request value 100m is greater than max value -1",
			"spec.limits[0].default[cpu] Invalid: default value 500m is greater than max value -1",
		}},
		{"quota scope", &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
			Spec: corev1.ResourceQuotaSpec{Scopes: []corev1.ResourceQuotaScope{"Bogus"}}}, []string{"spec.scopes Invalid: unsupported scope"}},
		{"persistent volume without spec", &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv"}}, []string{
			"spec.accessModes Required: ",
			"spec.capacity Required: ",
			"spec.capacity NotSupported: supported values: \"storage\"",
			"spec Required: must specify a volume type",
		}},
		{"persistent volume negative capacity", &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv"}, Spec: corev1.PersistentVolumeSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("-1")},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}}}}, []string{
			"spec.capacity[storage] Invalid: must be a valid resource quantity",
			"spec.capacity[storage] Invalid: must be greater than zero",
		}},

		// Other groups.
		{"CSR without spec", &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "csr"}}, []string{
			"spec.request Invalid: PEM block type must be CERTIFICATE REQUEST",
			"spec.usages Required: ",
			"spec.signerName Required: ",
		}},
		{"CSR signer name", &certificatesv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: "csr"}, Spec: certificatesv1.CertificateSigningRequestSpec{
			SignerName: "bogus", Usages: []certificatesv1.KeyUsage{"Bogus"}, ExpirationSeconds: ptr.To[int32](-1)}}, []string{
			"spec.request Invalid: PEM block type must be CERTIFICATE REQUEST",
			"spec.usages[0] NotSupported: supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\"",
			"spec.signerName Invalid: must be a fully qualified domain and path of the form 'example.com/signer-name'",
			"spec.expirationSeconds Invalid: may not specify a duration less than 600 seconds (10 minutes)",
		}},
		{"storage class", &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "sc"}, Provisioner: "Invalid_Value!",
			ReclaimPolicy: ptr.To[corev1.PersistentVolumeReclaimPolicy]("Recycle")}, []string{
			"provisioner Invalid: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
			"reclaimPolicy NotSupported: supported values: \"Delete\", \"Retain\"",
		}},
		{"volume attachment attacher", &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va"}, Spec: storagev1.VolumeAttachmentSpec{
			Attacher: "Invalid_Value!", NodeName: "n", Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv")}}}, []string{
			"spec.attacher Invalid: an RFC 1123 subdomain must consist of alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'Example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
		}},
		{"rolebinding service account name", &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rb", Namespace: "ns"},
			RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "r"}, Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "Invalid_Value!"}}},
			[]string{"subjects[0].name Invalid: " + dnsSubdomain}},
		{"HPA target without group", validHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.APIVersion = "v1" }),
			[]string{"spec.scaleTargetRef.apiVersion Invalid: apiVersion must specify API group"}},
		{"storage migration resource", &storagemigrationv1.StorageVersionMigration{ObjectMeta: metav1.ObjectMeta{Name: "m"},
			Spec: storagemigrationv1.StorageVersionMigrationSpec{Resource: metav1.GroupResource{Resource: "Invalid_Value!"}}},
			[]string{"spec.resource.resource Invalid: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"}},
		{"device attribute without value", validSlice(func(s *resourcev1.ResourceSlice) {
			s.Spec.Devices[0].Attributes = map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{"model": {}}
		}), []string{"spec.devices[0].attributes[model] Invalid: must specify one of: `int`, `bool`, `string`, `version`, `ints`, `bools`, `strings`, `versions`"}},
		{"device taint rule selector", &resourcev1.DeviceTaintRule{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Spec: resourcev1.DeviceTaintRuleSpec{
			DeviceSelector: &resourcev1.DeviceTaintSelector{Pool: ptr.To("Invalid_Value!")},
			Taint:          resourcev1.DeviceTaint{Key: "k", Effect: resourcev1.DeviceTaintEffectNoSchedule}}},
			[]string{"spec.deviceSelector.pool Invalid: " + dnsSubdomain}},
	} {
		t.Run(c.name, func(t *testing.T) {
			Default(c.obj)
			got := summary(Validate(c.obj))
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

// TestValidateUpdateAsObserved holds update cases whose answers come from
// upstream v1.37.2 in the differential test's corpus.
func TestValidateUpdateAsObserved(t *testing.T) {
	pod := vPod(nil).(*corev1.Pod)
	Default(pod)
	restart := pod.DeepCopy()
	restart.Spec.RestartPolicy = corev1.RestartPolicyNever
	negative := pod.DeepCopy()
	negative.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-5) // as stored by older servers
	toOne := negative.DeepCopy()
	toOne.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	svc := vService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.0.0.78" }).(*corev1.Service)
	Default(svc)
	moved := svc.DeepCopy()
	moved.Spec.ClusterIP, moved.Spec.ClusterIPs = "10.0.0.79", []string{"10.0.0.79"}
	ev := vEventsV1(func(*eventsv1.Event) {}).(*eventsv1.Event)
	evChanged := ev.DeepCopy()
	evChanged.Note, evChanged.Reason, evChanged.Series = "changed", "Other", &eventsv1.EventSeries{Count: 1}
	for _, c := range []struct {
		name     string
		obj, old runtime.Object
		want     []string
	}{
		{"events.k8s.io event fields", evChanged, ev, []string{
			"series.count Invalid: should be at least 2",
			"series.lastObservedTime Required: ",
			"reason Invalid: field is immutable",
			"message Invalid: field is immutable",
			"reason Invalid: field is immutable", // upstream checks it twice; kubectl shows it once
		}},
		{"pod restart policy", restart, pod, []string{"spec Forbidden: pod updates may not change fields other than " +
			"`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)," +
			"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"}},
		{"pod negative grace period set to 1", toOne, negative, nil},
		{"service cluster IP", moved, svc, []string{"spec.clusterIPs[0] Invalid: may not change once set"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			errs := ValidateUpdate(c.obj, c.old)
			got := summary(errs)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
	if errs := ValidateUpdate(moved, svc); len(errs) > 0 && !strings.Contains(errs[0].Error(), `["10.0.0.79"]`) {
		t.Errorf("cluster IP change should show the new list, as upstream: %v", errs[0])
	}
}
