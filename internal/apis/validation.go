package apis

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks a new object of a built-in kind.
func Validate(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePodSpec(&o.Spec, field.NewPath("spec"))
	case *corev1.Service:
		return validateService(o)
	case *corev1.ConfigMap:
		return validateConfigMap(o)
	case *corev1.Secret:
		return validateSecret(o)
	case *appsv1.Deployment:
		return validateWorkload(o.Spec.Replicas, o.Spec.Selector, &o.Spec.Template, true)
	case *appsv1.ReplicaSet:
		return validateWorkload(o.Spec.Replicas, o.Spec.Selector, &o.Spec.Template, true)
	case *appsv1.StatefulSet:
		return validateWorkload(o.Spec.Replicas, o.Spec.Selector, &o.Spec.Template, true)
	case *appsv1.DaemonSet:
		return validateWorkload(nil, o.Spec.Selector, &o.Spec.Template, true)
	case *batchv1.Job:
		return validateJobSpec(&o.Spec, field.NewPath("spec"))
	case *schedulingv1.PriorityClass:
		return validatePriorityClass(o)
	case *batchv1.CronJob:
		errs := validateJobSpec(&o.Spec.JobTemplate.Spec, field.NewPath("spec", "jobTemplate", "spec"))
		if o.Spec.Schedule == "" {
			errs = append(errs, field.Required(field.NewPath("spec", "schedule"), ""))
		}
		return errs
	}
	return validateRBAC(obj)
}

// ValidateUpdate checks an update of a built-in kind.
func ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	errs := Validate(obj)
	spec := field.NewPath("spec")
	switch o := obj.(type) {
	case *corev1.Pod:
		errs = append(errs, validatePodUpdate(o, old.(*corev1.Pod))...)
	case *corev1.Service:
		prev := old.(*corev1.Service)
		if prev.Spec.ClusterIP != "" && o.Spec.ClusterIP != prev.Spec.ClusterIP && o.Spec.Type != corev1.ServiceTypeExternalName {
			errs = append(errs, field.Invalid(spec.Child("clusterIP"), o.Spec.ClusterIP, "field is immutable"))
		}
	case *appsv1.Deployment:
		errs = append(errs, immutableSelector(o.Spec.Selector, old.(*appsv1.Deployment).Spec.Selector)...)
	case *appsv1.ReplicaSet:
		errs = append(errs, immutableSelector(o.Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector)...)
	case *appsv1.StatefulSet:
		errs = append(errs, immutableSelector(o.Spec.Selector, old.(*appsv1.StatefulSet).Spec.Selector)...)
	case *appsv1.DaemonSet:
		errs = append(errs, immutableSelector(o.Spec.Selector, old.(*appsv1.DaemonSet).Spec.Selector)...)
	case *batchv1.Job:
		prev := old.(*batchv1.Job)
		errs = append(errs, immutableSelector(o.Spec.Selector, prev.Spec.Selector)...)
		if !equality.Semantic.DeepEqual(o.Spec.Template, prev.Spec.Template) {
			errs = append(errs, field.Invalid(spec.Child("template"), "", "field is immutable"))
		}
	case *schedulingv1.PriorityClass:
		if p := old.(*schedulingv1.PriorityClass); p.Value != o.Value {
			errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
		}
	case *corev1.ConfigMap:
		// Update errors come before the object's own, in upstream's order.
		errs = append(validateConfigMapUpdate(o, old.(*corev1.ConfigMap)), errs...)
	case *corev1.Secret:
		errs = append(validateSecretUpdate(o, old.(*corev1.Secret)), errs...)
	}
	return append(errs, validateRBACUpdate(obj, old)...)
}

func immutableSelector(sel, old *metav1.LabelSelector) field.ErrorList {
	if !equality.Semantic.DeepEqual(sel, old) {
		return field.ErrorList{field.Invalid(field.NewPath("spec", "selector"), sel, "field is immutable")}
	}
	return nil
}

func validateWorkload(replicas *int32, sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec, alwaysRestart bool) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if replicas != nil && *replicas < 0 {
		errs = append(errs, field.Invalid(spec.Child("replicas"), *replicas, "must be greater than or equal to 0"))
	}
	if sel == nil {
		errs = append(errs, field.Required(spec.Child("selector"), ""))
	} else {
		s, err := metav1.LabelSelectorAsSelector(sel)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(spec.Child("selector"), sel, err.Error()))
		case s.Empty():
			errs = append(errs, field.Invalid(spec.Child("selector"), sel, "empty selector is invalid for deployment"))
		case !s.Matches(labels.Set(tmpl.Labels)):
			errs = append(errs, field.Invalid(spec.Child("template", "metadata", "labels"), tmpl.Labels, "`selector` does not match template `labels`"))
		}
	}
	tp := spec.Child("template", "spec")
	errs = append(errs, validatePodSpec(&tmpl.Spec, tp)...)
	if alwaysRestart && tmpl.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(tp.Child("restartPolicy"), tmpl.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	return errs
}

func validateJobSpec(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	errs := validatePodSpec(&s.Template.Spec, p.Child("template", "spec"))
	rp := s.Template.Spec.RestartPolicy
	if rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(p.Child("template", "spec", "restartPolicy"), rp,
			[]string{string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}))
	}
	for name, v := range map[string]*int32{"parallelism": s.Parallelism, "completions": s.Completions, "backoffLimit": s.BackoffLimit} {
		if v != nil && *v < 0 {
			errs = append(errs, field.Invalid(p.Child(name), *v, "must be greater than or equal to 0"))
		}
	}
	return errs
}

var restartPolicies = []string{string(corev1.RestartPolicyAlways), string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}

func validatePodSpec(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), ""))
	}
	names := sets.New[string]()
	check := func(cs []corev1.Container, cp *field.Path) {
		for i, c := range cs {
			ip := cp.Index(i)
			if c.Name == "" {
				errs = append(errs, field.Required(ip.Child("name"), ""))
			} else {
				for _, msg := range validation.IsDNS1123Label(c.Name) {
					errs = append(errs, field.Invalid(ip.Child("name"), c.Name, msg))
				}
				if names.Has(c.Name) {
					errs = append(errs, field.Duplicate(ip.Child("name"), c.Name))
				}
				names.Insert(c.Name)
			}
			if c.Image == "" {
				errs = append(errs, field.Required(ip.Child("image"), ""))
			}
			for j, port := range c.Ports {
				pp := ip.Child("ports").Index(j)
				for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
					errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
				}
				if port.HostPort != 0 {
					for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
						errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
					}
				}
			}
		}
	}
	check(s.InitContainers, p.Child("initContainers"))
	check(s.Containers, p.Child("containers"))
	errs = append(errs, validateScheduling(s, p)...)
	if s.RestartPolicy != "" && !sets.New(restartPolicies...).Has(string(s.RestartPolicy)) {
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), s.RestartPolicy, restartPolicies))
	}
	vols := sets.New[string]()
	for i, v := range s.Volumes {
		vp := p.Child("volumes").Index(i).Child("name")
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(vp, v.Name, msg))
		}
		if vols.Has(v.Name) {
			errs = append(errs, field.Duplicate(vp, v.Name))
		}
		vols.Insert(v.Name)
	}
	return errs
}

// validatePodUpdate allows only the fields upstream lets change on a
// running pod.
func validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	a, b := pod.Spec.DeepCopy(), old.Spec.DeepCopy()
	// Fields that may change: images, activeDeadlineSeconds, tolerations
	// (additions), and the node name once set by binding.
	for i := range a.Containers {
		if i < len(b.Containers) {
			a.Containers[i].Image = b.Containers[i].Image
		}
	}
	for i := range a.InitContainers {
		if i < len(b.InitContainers) {
			a.InitContainers[i].Image = b.InitContainers[i].Image
		}
	}
	a.ActiveDeadlineSeconds = b.ActiveDeadlineSeconds
	a.Tolerations = b.Tolerations
	a.TerminationGracePeriodSeconds = b.TerminationGracePeriodSeconds
	if b.NodeName == "" {
		a.NodeName = ""
	}
	if equality.Semantic.DeepEqual(a, b) {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec"),
		"pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, "+
			"`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds`")}
}

var serviceTypes = []string{string(corev1.ServiceTypeClusterIP), string(corev1.ServiceTypeNodePort), string(corev1.ServiceTypeLoadBalancer), string(corev1.ServiceTypeExternalName)}

func validateService(s *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if !sets.New(serviceTypes...).Has(string(s.Spec.Type)) {
		errs = append(errs, field.NotSupported(sp.Child("type"), s.Spec.Type, serviceTypes))
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		if s.Spec.ExternalName == "" {
			errs = append(errs, field.Required(sp.Child("externalName"), ""))
		}
		return errs
	}
	headless := s.Spec.ClusterIP == corev1.ClusterIPNone
	if len(s.Spec.Ports) == 0 && !headless {
		errs = append(errs, field.Required(sp.Child("ports"), ""))
	}
	names := sets.New[string]()
	for i, p := range s.Spec.Ports {
		pp := sp.Child("ports").Index(i)
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		}
		if p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		if p.NodePort != 0 && s.Spec.Type == corev1.ServiceTypeClusterIP {
			errs = append(errs, field.Forbidden(pp.Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
		}
	}
	return errs
}

func validateConfigMap(c *corev1.ConfigMap) field.ErrorList {
	var errs field.ErrorList
	for k := range c.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
		if _, dup := c.BinaryData[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
	}
	for k := range c.BinaryData {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, msg))
		}
	}
	return errs
}

// maxSecretSize is the total size limit of a secret's data, as upstream.
const maxSecretSize = 1 << 20

func validateSecret(s *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	total := 0
	for k, v := range s.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
		total += len(v)
	}
	if total > maxSecretSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxSecretSize))
	}
	if s.Type == corev1.SecretTypeServiceAccountToken && s.Annotations[corev1.ServiceAccountNameKey] == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
	}
	return errs
}

// Priority bounds, as upstream: user classes stay below the system ones.
const (
	HighestUserDefinablePriority = 1000000000
	SystemPriorityClassPrefix    = "system-"
)

func validatePriorityClass(pc *schedulingv1.PriorityClass) field.ErrorList {
	var errs field.ErrorList
	if pc.Value > HighestUserDefinablePriority && !strings.HasPrefix(pc.Name, SystemPriorityClassPrefix) {
		errs = append(errs, field.Forbidden(field.NewPath("value"), fmt.Sprintf("maximum allowed value of a user defined priority is %v", HighestUserDefinablePriority)))
	}
	if p := pc.PreemptionPolicy; p != nil && *p != corev1.PreemptLowerPriority && *p != corev1.PreemptNever {
		errs = append(errs, field.NotSupported(field.NewPath("preemptionPolicy"), *p, []string{string(corev1.PreemptLowerPriority), string(corev1.PreemptNever)}))
	}
	return errs
}
