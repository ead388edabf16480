package apis

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks a new object of a built-in kind, as upstream's create
// validation does (metadata is checked by the caller).
func Validate(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePod(o)
	case *corev1.PodTemplate:
		return validatePodTemplateSpec(&o.Template, field.NewPath("template"))
	case *corev1.ReplicationController:
		return validateReplicationController(o)
	case *corev1.Service:
		return validateService(o, nil)
	case *corev1.Node:
		return validateNode(o)
	case *corev1.Namespace:
		return validateNamespace(o)
	case *corev1.ConfigMap:
		return validateConfigMap(o)
	case *corev1.Secret:
		return validateSecret(o)
	case *corev1.ServiceAccount:
		return validateServiceAccount(o)
	case *corev1.Endpoints:
		return validateEndpoints(o)
	case *corev1.PersistentVolumeClaim:
		return validatePVCSpec(&o.Spec, field.NewPath("spec"))
	case *corev1.PersistentVolume:
		return validatePersistentVolume(o)
	case *corev1.ResourceQuota:
		return validateResourceQuota(o)
	case *corev1.LimitRange:
		return validateLimitRange(o)
	case *appsv1.Deployment:
		return validateDeployment(o)
	case *appsv1.ReplicaSet:
		return validateReplicaSet(o)
	case *appsv1.StatefulSet:
		return validateStatefulSet(o)
	case *appsv1.DaemonSet:
		return validateDaemonSet(o)
	case *appsv1.ControllerRevision:
		return validateControllerRevision(o)
	case *batchv1.Job:
		return validateJob(o)
	case *batchv1.CronJob:
		return validateCronJob(o, nil)
	case *policyv1.PodDisruptionBudget:
		return validatePDB(o)
	case *schedulingv1.PriorityClass:
		return validatePriorityClass(o)
	}
	if errs, ok := validateFlowControl(obj); ok {
		return errs
	}
	return append(validateRBAC(obj), validateMore(obj)...)
}

// ValidateUpdate checks an update of a built-in kind: the new object's
// validity and what may not change.
func ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	var errs field.ErrorList
	switch o := obj.(type) {
	case *corev1.Pod:
		prev := old.(*corev1.Pod)
		errs = validatePodSpec(&o.Spec, &o.ObjectMeta, field.NewPath("spec"))
		if g := o.Spec.TerminationGracePeriodSeconds; g != nil {
			errs = append(errs, nonNegative(*g, field.NewPath("spec", "terminationGracePeriodSeconds"))...)
		}
		errs = append(errs, validatePodUpdate(o, prev)...)
	case *corev1.Service:
		errs = validateServiceUpdate(o, old.(*corev1.Service))
	case *corev1.Node:
		errs = validateNodeUpdate(o, old.(*corev1.Node))
	case *corev1.ConfigMap:
		// Update errors come before the object's own, in upstream's order.
		errs = append(validateConfigMapUpdate(o, old.(*corev1.ConfigMap)), validateConfigMap(o)...)
	case *corev1.Secret:
		errs = append(validateSecretUpdate(o, old.(*corev1.Secret)), validateSecret(o)...)
	case *corev1.PersistentVolumeClaim:
		errs = validatePVCUpdate(o, old.(*corev1.PersistentVolumeClaim))
	case *appsv1.Deployment:
		errs = append(validateDeployment(o), immutable(o.Spec.Selector, old.(*appsv1.Deployment).Spec.Selector, field.NewPath("spec", "selector"))...)
	case *appsv1.ReplicaSet:
		errs = append(validateReplicaSet(o), immutable(o.Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector, field.NewPath("spec", "selector"))...)
	case *appsv1.StatefulSet:
		errs = validateStatefulSetUpdate(o, old.(*appsv1.StatefulSet))
	case *appsv1.DaemonSet:
		errs = validateDaemonSetUpdate(o, old.(*appsv1.DaemonSet))
	case *appsv1.ControllerRevision:
		errs = validateControllerRevisionUpdate(o, old.(*appsv1.ControllerRevision))
	case *batchv1.Job:
		errs = validateJobUpdate(o, old.(*batchv1.Job))
	case *batchv1.CronJob:
		errs = validateCronJob(o, old.(*batchv1.CronJob))
	case *schedulingv1.PriorityClass:
		errs = Validate(obj)
		if p := old.(*schedulingv1.PriorityClass); p.Value != o.Value {
			errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
		}
	case *eventsv1.Event:
		errs = validateEventsV1Update(o, old.(*eventsv1.Event))
	case *storagev1.StorageClass:
		errs = append(validateStorageClass(o), validateStorageClassUpdate(o, old.(*storagev1.StorageClass))...)
	case *autoscalingv2.HorizontalPodAutoscaler:
		errs = validateHPA(o, old.(*autoscalingv2.HorizontalPodAutoscaler))
	case *autoscalingv1.HorizontalPodAutoscaler:
		errs = validateHPA(HPAToV2(o), HPAToV2(old.(*autoscalingv1.HorizontalPodAutoscaler)))
	case *networkingv1.Ingress, *networkingv1.IngressClass, *networkingv1.NetworkPolicy, *discoveryv1.EndpointSlice:
		errs = validateNetUpdate(obj, old)
	default:
		errs = Validate(obj)
	}
	return append(append(errs, validateRBACUpdate(obj, old)...), validateMoreUpdate(obj, old)...)
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
	// A negative grace period stored by older servers may become 1.
	if g, og := a.TerminationGracePeriodSeconds, b.TerminationGracePeriodSeconds; g != nil && og != nil && *og < 0 && *g == 1 {
		a.TerminationGracePeriodSeconds = og
	}
	if b.NodeName == "" {
		a.NodeName = ""
	}
	if equality.Semantic.DeepEqual(a, b) {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec"),
		"pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"+
			"`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"+
			"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")}
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
