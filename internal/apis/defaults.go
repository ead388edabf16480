package apis

import (
	"math"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Default fills the defaults upstream's defaulting functions fill, so that
// objects read back look as they do from a Kubernetes API server.
func Default(obj runtime.Object) {
	defaultRBAC(obj)
	defaultMore(obj)
	defaultNetwork(obj)
	switch o := obj.(type) {
	case *corev1.Pod:
		// Pods (not templates) treat a negative grace period as 1.
		if g := o.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
			o.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
		}
		defaultPodSpec(&o.Spec)
		// Only pods, not templates, default enableServiceLinks, as upstream.
		o.Spec.EnableServiceLinks = orDefault(o.Spec.EnableServiceLinks, true)
		if o.Spec.HostNetwork {
			defaultHostNetworkPorts(o.Spec.Containers)
			defaultHostNetworkPorts(o.Spec.InitContainers)
		}
		if o.Spec.RestartPolicy == "" {
			o.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}
	case *corev1.PodTemplate:
		defaultTemplate(&o.Template, corev1.RestartPolicyAlways)
	case *corev1.ReplicationController:
		if o.Spec.Replicas == nil {
			o.Spec.Replicas = ptr.To[int32](1)
		}
		if o.Spec.Template != nil {
			defaultTemplate(o.Spec.Template, corev1.RestartPolicyAlways)
			if ls := o.Spec.Template.Labels; ls != nil {
				if len(o.Spec.Selector) == 0 {
					o.Spec.Selector = ls
				}
				if len(o.Labels) == 0 {
					o.Labels = ls
				}
			}
		}
	case *corev1.Service:
		defaultService(o)
	case *corev1.Node:
		defaultNodeCIDRs(&o.Spec)
	case *corev1.Namespace:
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		o.Labels[corev1.LabelMetadataName] = o.Name
		if o.Status.Phase == "" {
			o.Status.Phase = corev1.NamespaceActive
		}
	case *corev1.Secret:
		if o.Type == "" {
			o.Type = corev1.SecretTypeOpaque
		}
		// stringData is write-only: it is merged into data.
		for k, v := range o.StringData {
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			o.Data[k] = []byte(v)
		}
		o.StringData = nil
	case *corev1.Endpoints:
		for i := range o.Subsets {
			for j := range o.Subsets[i].Ports {
				if p := &o.Subsets[i].Ports[j]; p.Protocol == "" {
					p.Protocol = corev1.ProtocolTCP
				}
			}
		}
	case *corev1.PersistentVolumeClaim:
		if o.Spec.VolumeMode == nil {
			o.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
		}
	case *corev1.PersistentVolume:
		if o.Spec.PersistentVolumeReclaimPolicy == "" {
			o.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		}
		if o.Spec.VolumeMode == nil {
			o.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeFilesystem)
		}
	case *appsv1.Deployment:
		defaultDeployment(o)
	case *appsv1.ReplicaSet:
		if o.Spec.Replicas == nil {
			o.Spec.Replicas = ptr.To[int32](1)
		}
		defaultTemplate(&o.Spec.Template, corev1.RestartPolicyAlways)
	case *appsv1.StatefulSet:
		defaultStatefulSet(o)
	case *appsv1.DaemonSet:
		defaultDaemonSet(o)
	case *batchv1.Job:
		defaultJob(o)
	case *schedulingv1.PriorityClass:
		if pc := o; pc.PreemptionPolicy == nil {
			pc.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
		}
	case *batchv1.CronJob:
		s := &o.Spec
		if s.ConcurrencyPolicy == "" {
			s.ConcurrencyPolicy = batchv1.AllowConcurrent
		}
		s.Suspend = orDefault(s.Suspend, false)
		s.SuccessfulJobsHistoryLimit = orDefault(s.SuccessfulJobsHistoryLimit, int32(3))
		s.FailedJobsHistoryLimit = orDefault(s.FailedJobsHistoryLimit, int32(1))
		// Upstream defaults only the pod template here: the job spec gets
		// its defaults when the controller creates the Job.
		defaultTemplate(&s.JobTemplate.Spec.Template, "")
	}
}

// defaultHostNetworkPorts: on the host's network a container port is
// bound on the host too.
func defaultHostNetworkPorts(cs []corev1.Container) {
	for i := range cs {
		for j := range cs[i].Ports {
			if p := &cs[i].Ports[j]; p.HostPort == 0 {
				p.HostPort = p.ContainerPort
			}
		}
	}
}

func orDefault[T any](p *T, v T) *T {
	if p == nil {
		return &v
	}
	return p
}

// defaultTemplate defaults a workload's pod template; restart is the
// policy its controller uses when the template names none.
func defaultTemplate(t *corev1.PodTemplateSpec, restart corev1.RestartPolicy) {
	if t.Spec.RestartPolicy == "" && restart != "" {
		t.Spec.RestartPolicy = restart
	}
	defaultPodSpec(&t.Spec)
}

func defaultPodSpec(s *corev1.PodSpec) {
	// Every pod spec restarts always unless told otherwise, templates of
	// Jobs included (whose validation then asks for another policy).
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	s.TerminationGracePeriodSeconds = orDefault(s.TerminationGracePeriodSeconds, int64(corev1.DefaultTerminationGracePeriodSeconds))
	if s.SchedulerName == "" {
		s.SchedulerName = corev1.DefaultSchedulerName
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	// serviceAccount is the deprecated spelling of serviceAccountName; the
	// two are kept equal.
	if s.ServiceAccountName == "" {
		s.ServiceAccountName = s.DeprecatedServiceAccount
	}
	if s.DeprecatedServiceAccount == "" {
		s.DeprecatedServiceAccount = s.ServiceAccountName
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
	for i := range s.Volumes {
		v := &s.Volumes[i].VolumeSource
		switch {
		case ptr.AllPtrFieldsNil(v):
			// A volume without a source is an emptyDir.
			v.EmptyDir = &corev1.EmptyDirVolumeSource{}
		case v.Secret != nil:
			v.Secret.DefaultMode = orDefault(v.Secret.DefaultMode, corev1.SecretVolumeSourceDefaultMode)
		case v.ConfigMap != nil:
			v.ConfigMap.DefaultMode = orDefault(v.ConfigMap.DefaultMode, corev1.ConfigMapVolumeSourceDefaultMode)
		case v.HostPath != nil:
			v.HostPath.Type = orDefault(v.HostPath.Type, corev1.HostPathUnset)
		}
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
		if tag := imageTag(c.Image); tag == "" || tag == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil {
			continue
		}
		if p.TimeoutSeconds == 0 {
			p.TimeoutSeconds = 1
		}
		if p.PeriodSeconds == 0 {
			p.PeriodSeconds = 10
		}
		if p.SuccessThreshold == 0 {
			p.SuccessThreshold = 1
		}
		if p.FailureThreshold == 0 {
			p.FailureThreshold = 3
		}
		defaultHTTPGet(p.HTTPGet)
	}
	if l := c.Lifecycle; l != nil {
		for _, h := range []*corev1.LifecycleHandler{l.PostStart, l.PreStop} {
			if h != nil {
				defaultHTTPGet(h.HTTPGet)
			}
		}
	}
	for i := range c.Env {
		if f := c.Env[i].ValueFrom; f != nil && f.FieldRef != nil && f.FieldRef.APIVersion == "" {
			f.FieldRef.APIVersion = "v1"
		}
	}
}

// defaultHTTPGet defaults an HTTP probe or hook as upstream defaults every
// HTTPGetAction: path "/" over HTTP.
func defaultHTTPGet(g *corev1.HTTPGetAction) {
	if g == nil {
		return
	}
	if g.Scheme == "" {
		g.Scheme = corev1.URISchemeHTTP
	}
	if g.Path == "" {
		g.Path = "/"
	}
}

// imageTag returns the tag of an image reference ("" when it has none or
// is pinned by digest only).
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
		if !strings.Contains(image[strings.LastIndex(image, "/")+1:], ":") {
			return "digest"
		}
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return ""
}

func defaultDeployment(d *appsv1.Deployment) {
	s := &d.Spec
	s.Replicas = orDefault(s.Replicas, int32(1))
	if s.Strategy.Type == "" {
		s.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		q := intstr.FromString("25%")
		s.Strategy.RollingUpdate.MaxSurge = orDefault(s.Strategy.RollingUpdate.MaxSurge, q)
		s.Strategy.RollingUpdate.MaxUnavailable = orDefault(s.Strategy.RollingUpdate.MaxUnavailable, q)
	}
	s.RevisionHistoryLimit = orDefault(s.RevisionHistoryLimit, int32(10))
	s.ProgressDeadlineSeconds = orDefault(s.ProgressDeadlineSeconds, int32(600))
	defaultTemplate(&s.Template, corev1.RestartPolicyAlways)
}

func defaultStatefulSet(o *appsv1.StatefulSet) {
	s := &o.Spec
	s.Replicas = orDefault(s.Replicas, int32(1))
	if s.PodManagementPolicy == "" {
		s.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		s.UpdateStrategy.RollingUpdate.Partition = orDefault(s.UpdateStrategy.RollingUpdate.Partition, int32(0))
	}
	s.RevisionHistoryLimit = orDefault(s.RevisionHistoryLimit, int32(10))
	if s.PersistentVolumeClaimRetentionPolicy == nil {
		s.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if s.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
		s.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if s.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
		s.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	for i := range s.VolumeClaimTemplates {
		c := &s.VolumeClaimTemplates[i]
		c.Spec.VolumeMode = orDefault(c.Spec.VolumeMode, corev1.PersistentVolumeFilesystem)
	}
	defaultTemplate(&s.Template, corev1.RestartPolicyAlways)
}

func defaultDaemonSet(o *appsv1.DaemonSet) {
	s := &o.Spec
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		s.UpdateStrategy.RollingUpdate.MaxUnavailable = orDefault(s.UpdateStrategy.RollingUpdate.MaxUnavailable, intstr.FromInt32(1))
		s.UpdateStrategy.RollingUpdate.MaxSurge = orDefault(s.UpdateStrategy.RollingUpdate.MaxSurge, intstr.FromInt32(0))
	}
	s.RevisionHistoryLimit = orDefault(s.RevisionHistoryLimit, int32(10))
	defaultTemplate(&s.Template, corev1.RestartPolicyAlways)
}

func defaultJobSpec(s *batchv1.JobSpec) {
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = ptr.To[int32](1)
	}
	s.Parallelism = orDefault(s.Parallelism, int32(1))
	if s.BackoffLimit == nil && s.BackoffLimitPerIndex != nil {
		s.BackoffLimit = ptr.To[int32](math.MaxInt32) // per-index limits replace the global one
	}
	s.BackoffLimit = orDefault(s.BackoffLimit, int32(6))
	s.CompletionMode = orDefault(s.CompletionMode, batchv1.NonIndexedCompletion)
	s.Suspend = orDefault(s.Suspend, false)
	if s.PodReplacementPolicy == nil {
		// A pod failure policy needs terminated pods: only Failed is valid.
		r := batchv1.TerminatingOrFailed
		if s.PodFailurePolicy != nil {
			r = batchv1.Failed
		}
		s.PodReplacementPolicy = &r
	}
}

// Job labels that tie a job's pods to it (batch/v1 conventions).
const (
	jobControllerUID       = "batch.kubernetes.io/controller-uid"
	jobName                = "batch.kubernetes.io/job-name"
	legacyJobControllerUID = "controller-uid"
	legacyJobName          = "job-name"
)

func defaultJob(j *batchv1.Job) {
	defaultJobSpec(&j.Spec)
	defaultTemplate(&j.Spec.Template, "")
	if ptr.Deref(j.Spec.ManualSelector, false) || j.UID == "" {
		return
	}
	// Without a manual selector the job selects its pods by its own UID.
	labels := j.Spec.Template.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	labels[jobControllerUID] = string(j.UID)
	labels[legacyJobControllerUID] = string(j.UID)
	labels[jobName] = j.Name
	labels[legacyJobName] = j.Name
	j.Spec.Template.Labels = labels
	if j.Spec.Selector == nil {
		j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{jobControllerUID: string(j.UID)}}
	}
}

func defaultService(s *corev1.Service) {
	sp := &s.Spec
	if sp.Type == "" {
		sp.Type = corev1.ServiceTypeClusterIP
	}
	if sp.SessionAffinity == "" {
		sp.SessionAffinity = corev1.ServiceAffinityNone
	}
	if sp.SessionAffinity == corev1.ServiceAffinityNone {
		// As upstream: switching affinity off drops its configuration.
		sp.SessionAffinityConfig = nil
	}
	if sp.SessionAffinity == corev1.ServiceAffinityClientIP {
		c := sp.SessionAffinityConfig
		if c == nil {
			c = &corev1.SessionAffinityConfig{}
			sp.SessionAffinityConfig = c
		}
		if c.ClientIP == nil {
			c.ClientIP = &corev1.ClientIPConfig{}
		}
		if c.ClientIP.TimeoutSeconds == nil {
			c.ClientIP.TimeoutSeconds = ptr.To(corev1.DefaultClientIPServiceAffinitySeconds)
		}
	}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if sp.Type == corev1.ServiceTypeExternalName {
		return
	}
	// clusterIPs mirrors clusterIP when only the latter is given.
	if sp.ClusterIP != "" && len(sp.ClusterIPs) == 0 {
		sp.ClusterIPs = []string{sp.ClusterIP}
	}
	if sp.Type == corev1.ServiceTypeLoadBalancer && sp.AllocateLoadBalancerNodePorts == nil {
		sp.AllocateLoadBalancerNodePorts = ptr.To(true)
	}
	if sp.InternalTrafficPolicy == nil {
		sp.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	}
	externallyAccessible := sp.Type == corev1.ServiceTypeNodePort || sp.Type == corev1.ServiceTypeLoadBalancer ||
		(sp.Type == corev1.ServiceTypeClusterIP && len(sp.ExternalIPs) > 0)
	if externallyAccessible && sp.ExternalTrafficPolicy == "" {
		sp.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if sp.IPFamilyPolicy == nil {
		sp.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	if len(sp.IPFamilies) == 0 {
		sp.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
}

// defaultNodeCIDRs keeps podCIDR and podCIDRs in step as upstream's
// conversion does: podCIDR wins when the two disagree, for old clients.
func defaultNodeCIDRs(s *corev1.NodeSpec) {
	if s.PodCIDR != "" && (len(s.PodCIDRs) == 0 || s.PodCIDRs[0] != s.PodCIDR) {
		s.PodCIDRs = []string{s.PodCIDR}
	}
	if len(s.PodCIDRs) > 0 {
		s.PodCIDR = s.PodCIDRs[0]
	}
}
