package apis

import (
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	deploymentStrategies = []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)}
	daemonSetStrategies  = []string{string(appsv1.RollingUpdateDaemonSetStrategyType), string(appsv1.OnDeleteDaemonSetStrategyType)}
	pvcRetentionPolicies = []string{string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType), string(appsv1.DeletePersistentVolumeClaimRetentionPolicyType)}
)

// validateSelector checks a workload's selector strictly and returns it
// parsed (nil when it cannot be).
func validateSelector(sel *metav1.LabelSelector, kind string, p *field.Path) (labels.Selector, field.ErrorList) {
	var errs field.ErrorList
	if sel == nil {
		errs = append(errs, field.Required(p, ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p)...)
		if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(p, sel, "empty selector is invalid for "+kind))
		}
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, errs
	}
	return s, errs
}

// validateReplicaTemplate checks the pod template of a workload whose pods
// always restart: it must match the selector and have no deadline.
func validateReplicaTemplate(t *corev1.PodTemplateSpec, sel labels.Selector, kind string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !sel.Empty() && !sel.Matches(labels.Set(t.Labels)) {
		errs = append(errs, field.Invalid(p.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
	}
	errs = append(errs, validatePodTemplateSpec(t, p)...)
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(p.Child("spec", "restartPolicy"), t.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(p.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in "+kind+" is not Supported"))
	}
	return errs
}

func validateDeployment(d *appsv1.Deployment) field.ErrorList {
	p := field.NewPath("spec")
	s := &d.Spec
	var errs field.ErrorList
	if s.Replicas != nil {
		errs = append(errs, nonNegative(int64(*s.Replicas), p.Child("replicas"))...)
	}
	sel, serrs := validateSelector(s.Selector, "deployment", p.Child("selector"))
	errs = append(errs, serrs...)
	if sel == nil {
		errs = append(errs, field.Invalid(p.Child("selector"), s.Selector, "invalid label selector"))
	} else {
		errs = append(errs, validateReplicaTemplate(&s.Template, sel, "ReplicaSet", p.Child("template"))...)
	}
	errs = append(errs, validateDeploymentStrategy(&s.Strategy, p.Child("strategy"))...)
	errs = append(errs, nonNegative(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	if s.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*s.RevisionHistoryLimit), p.Child("revisionHistoryLimit"))...)
	}
	if pd := s.ProgressDeadlineSeconds; pd != nil {
		errs = append(errs, nonNegative(int64(*pd), p.Child("progressDeadlineSeconds"))...)
		if *pd <= s.MinReadySeconds {
			errs = append(errs, field.Invalid(p.Child("progressDeadlineSeconds"), pd, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, p *field.Path) field.ErrorList {
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		ru := s.RollingUpdate
		if ru == nil {
			return field.ErrorList{field.Required(p.Child("rollingUpdate"), "this should be defaulted and never be nil")}
		}
		rp := p.Child("rollingUpdate")
		unavailable, surge := deref(ru.MaxUnavailable), deref(ru.MaxSurge)
		errs := validateIntOrPercent(unavailable, rp.Child("maxUnavailable"))
		errs = append(errs, validateIntOrPercent(surge, rp.Child("maxSurge"))...)
		if intOrPercentValue(unavailable) == 0 && intOrPercentValue(surge) == 0 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), unavailable, "may not be 0 when `maxSurge` is 0"))
		}
		return append(errs, notOver100Percent(unavailable, rp.Child("maxUnavailable"))...)
	default:
		return field.ErrorList{field.NotSupported(p, s, deploymentStrategies)}
	}
	return nil
}

func deref(v *intstr.IntOrString) intstr.IntOrString {
	if v == nil {
		return intstr.IntOrString{}
	}
	return *v
}

// validateIntOrPercent accepts a non-negative integer or a percentage.
func validateIntOrPercent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch v.Type {
	case intstr.String:
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	case intstr.Int:
		errs = append(errs, nonNegative(int64(v.IntValue()), p)...)
	default:
		errs = append(errs, field.Invalid(p, v, "must be an integer or percentage (e.g '5%%')"))
	}
	return errs
}

// percentValue returns the number of a valid percentage.
func percentValue(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(validation.IsValidPercent(v.StrVal)) != 0 {
		return 0, false
	}
	n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1])
	return n, true
}

func intOrPercentValue(v intstr.IntOrString) int {
	if n, ok := percentValue(v); ok {
		return n
	}
	return v.IntValue()
}

func notOver100Percent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	if n, ok := percentValue(v); ok && n > 100 {
		return field.ErrorList{field.Invalid(p, v, "must not be greater than 100%")}
	}
	return nil
}

func validateReplicaSet(rs *appsv1.ReplicaSet) field.ErrorList {
	p := field.NewPath("spec")
	s := &rs.Spec
	var errs field.ErrorList
	if s.Replicas != nil {
		errs = append(errs, nonNegative(int64(*s.Replicas), p.Child("replicas"))...)
	}
	errs = append(errs, nonNegative(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	sel, serrs := validateSelector(s.Selector, "deployment", p.Child("selector"))
	errs = append(errs, serrs...)
	if sel == nil {
		return append(errs, field.Invalid(p.Child("selector"), s.Selector, "invalid label selector"))
	}
	return append(errs, validateReplicaTemplate(&s.Template, sel, "ReplicaSet", p.Child("template"))...)
}

func validateStatefulSet(ss *appsv1.StatefulSet) field.ErrorList {
	p := field.NewPath("spec")
	s := &ss.Spec
	var errs field.ErrorList
	switch s.PodManagementPolicy {
	case "":
		errs = append(errs, field.Required(p.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.Invalid(p.Child("podManagementPolicy"), s.PodManagementPolicy, "must be 'OrderedReady' or 'Parallel'"))
	}
	up := p.Child("updateStrategy")
	switch s.UpdateStrategy.Type {
	case "":
		errs = append(errs, field.Required(up, ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if s.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(up.Child("rollingUpdate"), s.UpdateStrategy.RollingUpdate, "only allowed for updateStrategy 'RollingUpdate'"))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := s.UpdateStrategy.RollingUpdate; ru != nil {
			rp := up.Child("rollingUpdate")
			if ru.Partition != nil {
				errs = append(errs, nonNegative(int64(*ru.Partition), rp.Child("partition"))...)
			}
			if mu := ru.MaxUnavailable; mu != nil {
				errs = append(errs, validateIntOrPercent(*mu, rp.Child("maxUnavailable"))...)
				if intOrPercentValue(*mu) == 0 {
					errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), *mu, "cannot be 0"))
				}
				errs = append(errs, notOver100Percent(*mu, rp.Child("maxUnavailable"))...)
			}
		}
	default:
		errs = append(errs, field.Invalid(up, s.UpdateStrategy, "must be 'RollingUpdate' or 'OnDelete'"))
	}
	if rp := s.PersistentVolumeClaimRetentionPolicy; rp != nil {
		pp := p.Child("persistentVolumeClaimRetentionPolicy")
		if !oneOf(string(rp.WhenDeleted), pvcRetentionPolicies) {
			errs = append(errs, field.NotSupported(pp.Child("whenDeleted"), rp.WhenDeleted, pvcRetentionPolicies))
		}
		if !oneOf(string(rp.WhenScaled), pvcRetentionPolicies) {
			errs = append(errs, field.NotSupported(pp.Child("whenScaled"), rp.WhenScaled, pvcRetentionPolicies))
		}
	}
	for i := range s.VolumeClaimTemplates {
		errs = append(errs, validatePVCSpec(&s.VolumeClaimTemplates[i].Spec, p.Child("volumeClaimTemplates").Index(i).Child("spec"))...)
	}
	if s.Replicas != nil {
		errs = append(errs, nonNegative(int64(*s.Replicas), p.Child("replicas"))...)
	}
	errs = append(errs, nonNegative(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	if s.Ordinals != nil {
		errs = append(errs, nonNegative(int64(s.Ordinals.Start), p.Child("ordinals.start"))...)
	}
	if s.ServiceName != "" {
		errs = append(errs, dns1123Label(s.ServiceName, p.Child("serviceName"))...)
	}
	sel, serrs := validateSelector(s.Selector, "statefulset", p.Child("selector"))
	errs = append(errs, serrs...)
	if sel == nil {
		errs = append(errs, field.Invalid(p.Child("selector"), s.Selector, ""))
	} else {
		errs = append(errs, validateStatefulSetTemplate(s, sel, p.Child("template"))...)
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(p.Child("template", "spec", "restartPolicy"), s.Template.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if s.Template.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(p.Child("template", "spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in StatefulSet is not Supported"))
	}
	return errs
}

// validateStatefulSetTemplate validates the template as the controller
// will use it: hostname and subdomain are set per pod, and each claim
// template adds a volume.
func validateStatefulSetTemplate(s *appsv1.StatefulSetSpec, sel labels.Selector, p *field.Path) field.ErrorList {
	t := &s.Template
	if t.Spec.Subdomain != "" || t.Spec.Hostname != "" || len(s.VolumeClaimTemplates) > 0 {
		t = t.DeepCopy()
		t.Spec.Subdomain, t.Spec.Hostname = "", ""
		if len(s.VolumeClaimTemplates) > 0 {
			claims := map[string]bool{}
			vols := make([]corev1.Volume, 0, len(s.VolumeClaimTemplates)+len(t.Spec.Volumes))
			for _, c := range s.VolumeClaimTemplates {
				if !claims[c.Name] {
					claims[c.Name] = true
					vols = append(vols, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.Name}}})
				}
			}
			for _, v := range t.Spec.Volumes {
				if !claims[v.Name] {
					vols = append(vols, v)
				}
			}
			t.Spec.Volumes = vols
		}
	}
	var errs field.ErrorList
	if !sel.Empty() && !sel.Matches(labels.Set(t.Labels)) {
		errs = append(errs, field.Invalid(p.Child("metadata", "labels"), t.Labels, "`selector` does not match template `labels`"))
	}
	// Upstream's code checks labels and annotations a second time here,
	// but its answers carry each error once.
	return append(errs, validatePodTemplateSpec(t, p)...)
}

func validateStatefulSetUpdate(ss, old *appsv1.StatefulSet) field.ErrorList {
	p := field.NewPath("spec")
	errs := validateStatefulSet(ss)
	errs = append(errs, immutable(ss.Spec.Selector, old.Spec.Selector, p.Child("selector"))...)
	errs = append(errs, immutable(ss.Spec.VolumeClaimTemplates, old.Spec.VolumeClaimTemplates, p.Child("volumeClaimTemplates"))...)
	errs = append(errs, immutable(ss.Spec.ServiceName, old.Spec.ServiceName, p.Child("serviceName"))...)
	return append(errs, immutable(ss.Spec.PodManagementPolicy, old.Spec.PodManagementPolicy, p.Child("podManagementPolicy"))...)
}

func validateDaemonSet(ds *appsv1.DaemonSet) field.ErrorList {
	p := field.NewPath("spec")
	s := &ds.Spec
	// A missing selector is not flagged as such: it matches no labels.
	errs := metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))
	if sel, err := metav1.LabelSelectorAsSelector(s.Selector); err == nil && !sel.Matches(labels.Set(s.Template.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), s.Template.Labels, "`selector` does not match template `labels`"))
	}
	if s.Selector != nil && len(s.Selector.MatchLabels)+len(s.Selector.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(p.Child("selector"), s.Selector, "empty selector is invalid for daemonset"))
	}
	errs = append(errs, validatePodTemplateSpec(&s.Template, p.Child("template"))...)
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(p.Child("template", "spec", "restartPolicy"), s.Template.Spec.RestartPolicy, []string{string(corev1.RestartPolicyAlways)}))
	}
	if s.Template.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(p.Child("template", "spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in DaemonSet is not Supported"))
	}
	errs = append(errs, nonNegative(int64(s.MinReadySeconds), p.Child("minReadySeconds"))...)
	errs = append(errs, validateDaemonSetStrategy(&s.UpdateStrategy, p.Child("updateStrategy"))...)
	if s.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*s.RevisionHistoryLimit), p.Child("revisionHistoryLimit"))...)
	}
	return errs
}

func validateDaemonSetStrategy(s *appsv1.DaemonSetUpdateStrategy, p *field.Path) field.ErrorList {
	switch s.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
		return nil
	case appsv1.RollingUpdateDaemonSetStrategyType:
	default:
		return field.ErrorList{field.NotSupported(p, s, daemonSetStrategies)}
	}
	if s.RollingUpdate == nil {
		return field.ErrorList{field.Required(p.Child("rollingUpdate"), "")}
	}
	rp := p.Child("rollingUpdate")
	unavailable, surge := deref(s.RollingUpdate.MaxUnavailable), deref(s.RollingUpdate.MaxSurge)
	errs := validateIntOrPercent(unavailable, rp.Child("maxUnavailable"))
	errs = append(errs, validateIntOrPercent(surge, rp.Child("maxSurge"))...)
	errs = append(errs, notOver100Percent(unavailable, rp.Child("maxUnavailable"))...)
	errs = append(errs, notOver100Percent(surge, rp.Child("maxSurge"))...)
	hasUnavailable, hasSurge := intOrPercentValue(unavailable) != 0, intOrPercentValue(surge) != 0
	switch {
	case hasUnavailable && hasSurge:
		errs = append(errs, field.Invalid(rp.Child("maxSurge"), surge, "may not be set when maxUnavailable is non-zero"))
	case !hasUnavailable && !hasSurge:
		errs = append(errs, field.Required(rp.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
	}
	return errs
}

func validateDaemonSetUpdate(ds, old *appsv1.DaemonSet) field.ErrorList {
	p := field.NewPath("spec")
	var errs field.ErrorList
	s, o := &ds.Spec, &old.Spec
	errs = append(errs, immutable(s.Selector, o.Selector, p.Child("selector"))...)
	return append(errs, validateDaemonSet(ds)...)
}

func validateControllerRevision(cr *appsv1.ControllerRevision) field.ErrorList {
	errs := nonNegative(cr.Revision, field.NewPath("revision"))
	dp := field.NewPath("data")
	raw := cr.Data.Raw
	if raw == nil && cr.Data.Object != nil {
		raw, _ = json.Marshal(cr.Data.Object)
	}
	var v any
	switch err := json.Unmarshal(raw, &v); {
	case raw == nil:
		errs = append(errs, field.Required(dp, "data is mandatory"))
	case err != nil:
		errs = append(errs, field.Invalid(dp, "<value omitted>", fmt.Sprintf("error parsing data: %v", err)))
	case v == nil:
		errs = append(errs, field.Required(dp, "data is mandatory"))
	default:
		if _, ok := v.(map[string]any); !ok {
			errs = append(errs, field.Required(dp, "data must be a valid JSON object"))
		}
	}
	return errs
}

func validateControllerRevisionUpdate(cr, old *appsv1.ControllerRevision) field.ErrorList {
	errs := nonNegative(cr.Revision, field.NewPath("revision"))
	if !equality.Semantic.DeepEqual(cr.Data, old.Data) {
		errs = append(errs, field.Invalid(field.NewPath("data"), cr.Data, "field is immutable"))
	}
	return errs
}
