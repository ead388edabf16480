package apis

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Limits of indexed jobs and their policies, as upstream.
const (
	maxParallelismForIndexedJob     = 100000
	maxFailedIndexesForIndexedJob   = 100000
	completionsSoftLimit            = 100000
	parallelismLimitHighCompletions = 10000
	maxFailedIndexesHighCompletions = 10000
	maxPodFailurePolicyRules        = 20
	maxOnExitCodesValues            = 255
	maxOnPodConditionsPatterns      = 20
	maxManagedByLength              = 63
	maxSucceededIndexesLength       = 64 * 1024
	maxSuccessPolicyRules           = 20
	// cronJobNameMax leaves room for the 11-character suffix of its jobs.
	cronJobNameMax = validation.DNS1035LabelMaxLength - 11
)

var (
	completionModes      = []string{string(batchv1.NonIndexedCompletion), string(batchv1.IndexedCompletion)}
	concurrencyPolicies  = []string{string(batchv1.AllowConcurrent), string(batchv1.ForbidConcurrent), string(batchv1.ReplaceConcurrent)}
	podFailureActions    = []string{string(batchv1.PodFailurePolicyActionCount), string(batchv1.PodFailurePolicyActionFailIndex), string(batchv1.PodFailurePolicyActionFailJob), string(batchv1.PodFailurePolicyActionIgnore)}
	onExitCodesOperators = []string{string(batchv1.PodFailurePolicyOnExitCodesOpIn), string(batchv1.PodFailurePolicyOnExitCodesOpNotIn)}
	conditionStatuses    = []string{string(corev1.ConditionFalse), string(corev1.ConditionTrue), string(corev1.ConditionUnknown)}
	podReplacements      = []string{string(batchv1.Failed), string(batchv1.TerminatingOrFailed)}
)

func validateJob(j *batchv1.Job) field.ErrorList {
	errs := validateGeneratedSelector(j)
	errs = append(errs, validateJobSpecWithSelector(&j.Spec, field.NewPath("spec"))...)
	return append(errs, validateNameAllowsCompletions(j)...)
}

// validateGeneratedSelector checks that a job without a manual selector
// carries the labels and selector generated from its UID.
func validateGeneratedSelector(j *batchv1.Job) field.ErrorList {
	if ptr.Deref(j.Spec.ManualSelector, false) || j.Spec.Selector == nil {
		return nil
	}
	var errs field.ErrorList
	if j.UID == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "uid"), ""))
	}
	tp := field.NewPath("spec", "template", "metadata")
	for _, l := range []struct{ key, want string }{
		{legacyJobControllerUID, string(j.UID)}, {legacyJobName, j.Name}, {jobControllerUID, string(j.UID)}, {jobName, j.Name},
	} {
		errs = append(errs, validateHasLabel(j.Spec.Template.Labels, tp, l.key, l.want)...)
	}
	want := labels.Set{jobControllerUID: string(j.UID), jobName: j.Name, legacyJobControllerUID: string(j.UID), legacyJobName: j.Name}
	if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil && !sel.Matches(want) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), j.Spec.Selector, "`selector` not auto-generated"))
	}
	return errs
}

func validateHasLabel(ls map[string]string, p *field.Path, key, want string) field.ErrorList {
	got, ok := ls[key]
	switch {
	case !ok:
		return field.ErrorList{field.Required(p.Child("labels").Key(key), "must be '"+want+"'")}
	case got != want:
		return field.ErrorList{field.Invalid(p.Child("labels").Key(key), ls, "must be '"+want+"'")}
	}
	return nil
}

// validateNameAllowsCompletions: an indexed job's pods are named
// NAME-INDEX and their hostnames must be DNS labels.
func validateNameAllowsCompletions(j *batchv1.Job) field.ErrorList {
	s := &j.Spec
	if ptr.Deref(s.CompletionMode, "") != batchv1.IndexedCompletion || ptr.Deref(s.Completions, 0) <= 0 {
		return nil
	}
	host := fmt.Sprintf("%s-%d", j.Name, *s.Completions-1)
	if len(validation.IsDNS1123Label(host)) > 0 {
		return field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), j.Name, "will not able to create pod with invalid DNS label: "+host)}
	}
	return nil
}

func validateJobSpecWithSelector(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	errs := validateJobSpec(s, p)
	if s.Selector == nil {
		errs = append(errs, field.Required(p.Child("selector"), ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	}
	if sel, err := metav1.LabelSelectorAsSelector(s.Selector); err == nil && !sel.Matches(labels.Set(s.Template.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), s.Template.Labels, "`selector` does not match template `labels`"))
	}
	return errs
}

func validateJobSpec(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		v    *int32
	}{{"parallelism", s.Parallelism}, {"completions", s.Completions}} {
		if f.v != nil {
			errs = append(errs, nonNegative(int64(*f.v), p.Child(f.name))...)
		}
	}
	if s.ActiveDeadlineSeconds != nil {
		errs = append(errs, nonNegative(*s.ActiveDeadlineSeconds, p.Child("activeDeadlineSeconds"))...)
	}
	for _, f := range []struct {
		name string
		v    *int32
	}{{"backoffLimit", s.BackoffLimit}, {"ttlSecondsAfterFinished", s.TTLSecondsAfterFinished}, {"backoffLimitPerIndex", s.BackoffLimitPerIndex}} {
		if f.v != nil {
			errs = append(errs, nonNegative(int64(*f.v), p.Child(f.name))...)
		}
	}
	if s.MaxFailedIndexes != nil {
		errs = append(errs, nonNegative(int64(*s.MaxFailedIndexes), p.Child("maxFailedIndexes"))...)
		if s.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Required(p.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
		}
	}
	if s.ManagedBy != nil {
		errs = append(errs, validation.IsDomainPrefixedPath(p.Child("managedBy"), *s.ManagedBy)...)
		if len(*s.ManagedBy) > maxManagedByLength {
			errs = append(errs, field.TooLong(p.Child("managedBy"), "", maxManagedByLength))
		}
	}
	indexed := ptr.Deref(s.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
	if m := s.CompletionMode; m != nil {
		if !oneOf(string(*m), completionModes) {
			errs = append(errs, field.NotSupported(p.Child("completionMode"), *m, completionModes))
		}
		if indexed {
			errs = append(errs, validateIndexedJob(s, p)...)
		}
	}
	if !indexed {
		if s.BackoffLimitPerIndex != nil {
			errs = append(errs, field.Invalid(p.Child("backoffLimitPerIndex"), *s.BackoffLimitPerIndex, "requires indexed completion mode"))
		}
		if s.MaxFailedIndexes != nil {
			errs = append(errs, field.Invalid(p.Child("maxFailedIndexes"), *s.MaxFailedIndexes, "requires indexed completion mode"))
		}
	}
	if s.PodFailurePolicy != nil {
		errs = append(errs, validatePodFailurePolicy(s, p.Child("podFailurePolicy"))...)
	}
	if s.SuccessPolicy != nil {
		if !indexed {
			errs = append(errs, field.Invalid(p.Child("successPolicy"), *s.SuccessPolicy, "requires indexed completion mode"))
		} else {
			errs = append(errs, validateSuccessPolicy(s, p.Child("successPolicy"))...)
		}
	}
	if r := s.PodReplacementPolicy; r != nil {
		if s.PodFailurePolicy != nil {
			if *r != batchv1.Failed {
				errs = append(errs, field.NotSupported(p.Child("podReplacementPolicy"), *r, []string{string(batchv1.Failed)}))
			}
		} else if !oneOf(string(*r), podReplacements) {
			errs = append(errs, field.NotSupported(p.Child("podReplacementPolicy"), *r, podReplacements))
		}
	}
	errs = append(errs, validatePodTemplateSpec(&s.Template, p.Child("template"))...)
	rp := p.Child("template", "spec", "restartPolicy")
	switch r := s.Template.Spec.RestartPolicy; {
	case r == corev1.RestartPolicyAlways || r == "":
		errs = append(errs, field.Required(rp, fmt.Sprintf("valid values: %q, %q", corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)))
	case r != corev1.RestartPolicyOnFailure && r != corev1.RestartPolicyNever:
		errs = append(errs, field.NotSupported(rp, r, []string{string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}))
	case s.PodFailurePolicy != nil && r != corev1.RestartPolicyNever:
		errs = append(errs, field.Invalid(rp, r, fmt.Sprintf("only %q is supported when podFailurePolicy is specified", corev1.RestartPolicyNever)))
	}
	return errs
}

func validateIndexedJob(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Completions == nil {
		errs = append(errs, field.Required(p.Child("completions"), "when completion mode is Indexed"))
	}
	if s.Parallelism != nil && *s.Parallelism > maxParallelismForIndexedJob {
		errs = append(errs, field.Invalid(p.Child("parallelism"), *s.Parallelism,
			fmt.Sprintf("must be less than or equal to %d when completion mode is Indexed", maxParallelismForIndexedJob)))
	}
	if s.Completions != nil && s.MaxFailedIndexes != nil && *s.MaxFailedIndexes > *s.Completions {
		errs = append(errs, field.Invalid(p.Child("maxFailedIndexes"), *s.MaxFailedIndexes, "must be less than or equal to completions"))
	}
	if s.MaxFailedIndexes != nil && *s.MaxFailedIndexes > maxFailedIndexesForIndexedJob {
		errs = append(errs, field.Invalid(p.Child("maxFailedIndexes"), *s.MaxFailedIndexes, fmt.Sprintf("must be less than or equal to %d", maxFailedIndexesForIndexedJob)))
	}
	if s.Completions != nil && *s.Completions > completionsSoftLimit && s.BackoffLimitPerIndex != nil {
		if s.MaxFailedIndexes == nil {
			errs = append(errs, field.Required(p.Child("maxFailedIndexes"), fmt.Sprintf("must be specified when completions is above %d", completionsSoftLimit)))
		}
		suffix := fmt.Sprintf(" when completions are above %d and used with backoff limit per index", completionsSoftLimit)
		if s.Parallelism != nil && *s.Parallelism > parallelismLimitHighCompletions {
			errs = append(errs, field.Invalid(p.Child("parallelism"), *s.Parallelism, fmt.Sprintf("must be less than or equal to %d", parallelismLimitHighCompletions)+suffix))
		}
		if s.MaxFailedIndexes != nil && *s.MaxFailedIndexes > maxFailedIndexesHighCompletions {
			errs = append(errs, field.Invalid(p.Child("maxFailedIndexes"), *s.MaxFailedIndexes, fmt.Sprintf("must be less than or equal to %d", maxFailedIndexesHighCompletions)+suffix))
		}
	}
	return errs
}

func validatePodFailurePolicy(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	rp := p.Child("rules")
	rules := s.PodFailurePolicy.Rules
	if len(rules) > maxPodFailurePolicyRules {
		errs = append(errs, field.TooMany(rp, len(rules), maxPodFailurePolicyRules))
	}
	names := sets.New[string]()
	for _, c := range s.Template.Spec.Containers {
		names.Insert(c.Name)
	}
	for _, c := range s.Template.Spec.InitContainers {
		names.Insert(c.Name)
	}
	for i := range rules {
		errs = append(errs, validatePodFailurePolicyRule(s, &rules[i], rp.Index(i), names)...)
	}
	return errs
}

func validatePodFailurePolicyRule(s *batchv1.JobSpec, r *batchv1.PodFailurePolicyRule, p *field.Path, names sets.Set[string]) field.ErrorList {
	var errs field.ErrorList
	ap := p.Child("action")
	switch {
	case r.Action == "":
		errs = append(errs, field.Required(ap, fmt.Sprintf("valid values: %q", podFailureActions)))
	case r.Action == batchv1.PodFailurePolicyActionFailIndex:
		if s.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Invalid(ap, r.Action, "requires the backoffLimitPerIndex to be set"))
		}
	case !oneOf(string(r.Action), podFailureActions):
		errs = append(errs, field.NotSupported(ap, r.Action, podFailureActions))
	}
	if oc := r.OnExitCodes; oc != nil {
		ep := p.Child("onExitCodes")
		switch {
		case oc.Operator == "":
			errs = append(errs, field.Required(ep.Child("operator"), fmt.Sprintf("valid values: %q", onExitCodesOperators)))
		case !oneOf(string(oc.Operator), onExitCodesOperators):
			errs = append(errs, field.NotSupported(ep.Child("operator"), oc.Operator, onExitCodesOperators))
		}
		if oc.ContainerName != nil && !names.Has(*oc.ContainerName) {
			errs = append(errs, field.Invalid(ep.Child("containerName"), *oc.ContainerName, "must be one of the container or initContainer names in the pod template"))
		}
		vp := ep.Child("values")
		if len(oc.Values) == 0 {
			errs = append(errs, field.Invalid(vp, oc.Values, "at least one value is required"))
		} else if len(oc.Values) > maxOnExitCodesValues {
			errs = append(errs, field.TooMany(vp, len(oc.Values), maxOnExitCodesValues))
		}
		ordered := true
		seen := sets.New[int32]()
		for j, v := range oc.Values {
			if oc.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0 {
				errs = append(errs, field.Invalid(vp.Index(j), v, "must not be 0 for the In operator"))
			}
			if seen.Has(v) {
				errs = append(errs, field.Duplicate(vp.Index(j), v))
			}
			seen.Insert(v)
			if j > 0 && oc.Values[j-1] > v {
				ordered = false
			}
		}
		if !ordered {
			errs = append(errs, field.Invalid(vp, oc.Values, "must be ordered"))
		}
	}
	if len(r.OnPodConditions) > 0 {
		cp := p.Child("onPodConditions")
		if len(r.OnPodConditions) > maxOnPodConditionsPatterns {
			errs = append(errs, field.TooMany(cp, len(r.OnPodConditions), maxOnPodConditionsPatterns))
		}
		for j, pat := range r.OnPodConditions {
			pp := cp.Index(j)
			for _, msg := range validation.IsQualifiedName(string(pat.Type)) {
				errs = append(errs, field.Invalid(pp.Child("type"), string(pat.Type), msg))
			}
			switch {
			case pat.Status == "":
				errs = append(errs, field.Required(pp.Child("status"), fmt.Sprintf("valid values: %q", conditionStatuses)))
			case !oneOf(string(pat.Status), conditionStatuses):
				errs = append(errs, field.NotSupported(pp.Child("status"), pat.Status, conditionStatuses))
			}
		}
	}
	if r.OnExitCodes != nil && len(r.OnPodConditions) > 0 {
		errs = append(errs, field.Invalid(p, field.OmitValueType{}, "specifying both OnExitCodes and OnPodConditions is not supported"))
	}
	if r.OnExitCodes == nil && len(r.OnPodConditions) == 0 {
		errs = append(errs, field.Invalid(p, field.OmitValueType{}, "specifying one of OnExitCodes and OnPodConditions is required"))
	}
	return errs
}

func validateSuccessPolicy(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	rp := p.Child("rules")
	rules := s.SuccessPolicy.Rules
	if len(rules) == 0 {
		errs = append(errs, field.Required(rp, "at least one rules must be specified when the successPolicy is specified"))
	}
	if len(rules) > maxSuccessPolicyRules {
		errs = append(errs, field.TooMany(rp, len(rules), maxSuccessPolicyRules))
	}
	completions := ptr.Deref(s.Completions, 0)
	for i, r := range rules {
		ip := rp.Index(i)
		if r.SucceededCount == nil && r.SucceededIndexes == nil {
			errs = append(errs, field.Required(ip, "at least one of succeededCount or succeededIndexes must be specified"))
		}
		var total int32
		if r.SucceededIndexes != nil {
			sp := ip.Child("succeededIndexes")
			if len(*r.SucceededIndexes) > maxSucceededIndexesLength {
				errs = append(errs, field.TooLong(sp, "", maxSucceededIndexesLength))
			}
			var err error
			if total, err = countIndexes(*r.SucceededIndexes, completions); err != nil {
				errs = append(errs, field.Invalid(sp, *r.SucceededIndexes, "error parsing succeededIndexes: "+err.Error()))
			}
		}
		if r.SucceededCount != nil {
			cp := ip.Child("succeededCount")
			errs = append(errs, nonNegative(int64(*r.SucceededCount), cp)...)
			if *r.SucceededCount > completions {
				errs = append(errs, field.Invalid(cp, *r.SucceededCount, fmt.Sprintf("must be less than or equal to %d (the number of specified completions)", completions)))
			}
			if r.SucceededIndexes != nil && *r.SucceededCount > total {
				errs = append(errs, field.Invalid(cp, *r.SucceededCount, fmt.Sprintf("must be less than or equal to %d (the number of indexes in the specified succeededIndexes field)", total)))
			}
		}
	}
	return errs
}

// countIndexes parses "1,3-5" style index lists, increasing and below
// completions, and counts them.
func countIndexes(list string, completions int32) (int32, error) {
	if list == "" {
		return 0, nil
	}
	var total int32
	last := int32(-1)
	for _, interval := range strings.Split(list, ",") {
		parts := strings.Split(interval, "-")
		if len(parts) > 2 {
			return 0, fmt.Errorf("the fragment %q violates the requirement that an index interval can have at most two parts separated by '-'", interval)
		}
		var bounds [2]int32
		for k, s := range parts {
			v, err := strconv.Atoi(s)
			if err != nil {
				return 0, fmt.Errorf("cannot convert string to integer for index: %q", s)
			}
			if v >= int(completions) {
				return 0, fmt.Errorf("too large index: %q", s)
			}
			bounds[k] = int32(v)
		}
		if len(parts) == 1 {
			bounds[1] = bounds[0]
		} else if bounds[0] >= bounds[1] {
			return 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", bounds[0], bounds[1])
		}
		if last >= 0 && last >= bounds[0] {
			return 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", last, bounds[0])
		}
		total += bounds[1] - bounds[0] + 1
		last = bounds[1]
	}
	return total, nil
}

// validateJobUpdate: the template is frozen unless the job is suspended
// (then only scheduling directives may change), as are the selector,
// completion mode and the policies.
func validateJobUpdate(j, old *batchv1.Job) field.ErrorList {
	p := field.NewPath("spec")
	s, o := &j.Spec, &old.Spec
	errs := validateJobSpecWithSelector(s, p)
	if ptr.Deref(s.CompletionMode, "") == batchv1.IndexedCompletion {
		if !equality.Semantic.DeepEqual(s.Completions, o.Completions) && s.Completions != nil &&
			(s.Parallelism == nil || *s.Completions != *s.Parallelism) {
			errs = append(errs, field.Invalid(p.Child("completions"), s.Completions, "can only be modified in tandem with spec.parallelism"))
		}
	} else {
		errs = append(errs, immutable(s.Completions, o.Completions, p.Child("completions"))...)
	}
	errs = append(errs, immutable(s.Selector, o.Selector, p.Child("selector"))...)
	oldTmpl := &o.Template
	if ptr.Deref(o.Suspend, false) {
		// A suspended job may change the scheduling directives of its pods.
		oldTmpl = o.Template.DeepCopy()
		oldTmpl.Labels, oldTmpl.Annotations = s.Template.Labels, s.Template.Annotations
		oldTmpl.Spec.NodeSelector, oldTmpl.Spec.Tolerations = s.Template.Spec.NodeSelector, s.Template.Spec.Tolerations
		oldTmpl.Spec.SchedulingGates = s.Template.Spec.SchedulingGates
		switch a, oa := s.Template.Spec.Affinity, oldTmpl.Spec.Affinity; {
		case a == nil && oa != nil:
			oa.NodeAffinity = nil
			if *oa == (corev1.Affinity{}) {
				oldTmpl.Spec.Affinity = nil
			}
		case a != nil && oa == nil:
			oldTmpl.Spec.Affinity = &corev1.Affinity{NodeAffinity: a.NodeAffinity}
		case a != nil && oa != nil:
			oa.NodeAffinity = a.NodeAffinity
		}
	}
	errs = append(errs, immutable(&s.Template, oldTmpl, p.Child("template"))...)
	errs = append(errs, immutable(s.CompletionMode, o.CompletionMode, p.Child("completionMode"))...)
	errs = append(errs, immutable(s.PodFailurePolicy, o.PodFailurePolicy, p.Child("podFailurePolicy"))...)
	errs = append(errs, immutable(s.BackoffLimitPerIndex, o.BackoffLimitPerIndex, p.Child("backoffLimitPerIndex"))...)
	errs = append(errs, immutable(s.ManagedBy, o.ManagedBy, p.Child("managedBy"))...)
	errs = append(errs, immutable(s.SuccessPolicy, o.SuccessPolicy, p.Child("successPolicy"))...)
	return append(errs, validateNameAllowsCompletions(j)...)
}

// immutable is upstream's ValidateImmutableField.
func immutable(v, old any, p *field.Path) field.ErrorList {
	if equality.Semantic.DeepEqual(v, old) {
		return nil
	}
	return field.ErrorList{field.Invalid(p, v, "field is immutable")}
}

func validateCronJob(cj *batchv1.CronJob, old *batchv1.CronJob) field.ErrorList {
	p := field.NewPath("spec")
	s := &cj.Spec
	var errs field.ErrorList
	if s.Schedule != "" {
		allowTZ := old != nil && strings.Contains(old.Spec.Schedule, "TZ")
		errs = append(errs, validateSchedule(s.Schedule, allowTZ, s.TimeZone, p.Child("schedule"))...)
	}
	if s.StartingDeadlineSeconds != nil {
		errs = append(errs, nonNegative(*s.StartingDeadlineSeconds, p.Child("startingDeadlineSeconds"))...)
	}
	if old == nil || !ptr.Equal(old.Spec.TimeZone, s.TimeZone) {
		errs = append(errs, validateTimeZone(s.TimeZone, p.Child("timeZone"))...)
	}
	errs = append(errs, validateEnum(string(s.ConcurrencyPolicy), concurrencyPolicies, p.Child("concurrencyPolicy"))...)
	jp := p.Child("jobTemplate", "spec")
	errs = append(errs, validateJobSpec(&s.JobTemplate.Spec, jp)...)
	if s.JobTemplate.Spec.Selector != nil {
		errs = append(errs, field.Invalid(jp.Child("selector"), s.JobTemplate.Spec.Selector, "`selector` will be auto-generated"))
	}
	if ms := s.JobTemplate.Spec.ManualSelector; ms != nil && *ms {
		errs = append(errs, field.NotSupported(jp.Child("manualSelector"), ms, []string{"nil", "false"}))
	}
	if s.SuccessfulJobsHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*s.SuccessfulJobsHistoryLimit), p.Child("successfulJobsHistoryLimit"))...)
	}
	if s.FailedJobsHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*s.FailedJobsHistoryLimit), p.Child("failedJobsHistoryLimit"))...)
	}
	if old == nil && len(cj.Name) > cronJobNameMax {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, "must be no more than 52 characters"))
	}
	if s.Schedule == "" {
		// Upstream checks this declaratively, after the handwritten rules.
		errs = append(errs, field.Required(p.Child("schedule"), ""))
	}
	return errs
}

// validateSchedule parses the schedule as the CronJob controller will, and
// refuses time zones in it (spec.timeZone is the way).
func validateSchedule(schedule string, allowTZ bool, tz *string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if err := parseCron(schedule); err != nil {
		errs = append(errs, field.Invalid(p, schedule, err.Error()))
	}
	hasTZ := strings.Contains(schedule, "TZ")
	switch {
	case allowTZ && hasTZ && tz != nil:
		errs = append(errs, field.Invalid(p, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
	case !allowTZ && hasTZ:
		errs = append(errs, field.Invalid(p, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	}
	return errs
}

// parseCron parses a standard cron line; the parser panics on some input,
// which is a parse error too.
func parseCron(schedule string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid schedule format: %v", r)
		}
	}()
	_, err = cron.ParseStandard(schedule)
	return err
}

// validTZPart reports whether one '/'-separated part of a time zone name
// follows IANA's naming rules (plus digits and '+', tolerated for legacy
// names).
func validTZPart(part string) bool {
	if part == "" || len(part) > 14 || part == "." || part == ".." || part[0] == '-' {
		return false
	}
	for i := 0; i < len(part); i++ {
		c := part[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == '+') {
			return false
		}
	}
	return true
}

func validateTimeZone(tz *string, p *field.Path) field.ErrorList {
	if tz == nil {
		return nil
	}
	if *tz == "" {
		return field.ErrorList{field.Invalid(p, tz, "timeZone must be nil or non-empty string")}
	}
	for _, part := range strings.Split(*tz, "/") {
		if !validTZPart(part) {
			return field.ErrorList{field.Invalid(p, tz, "unknown time zone "+*tz)}
		}
	}
	var errs field.ErrorList
	if strings.EqualFold(*tz, "Local") {
		errs = append(errs, field.Invalid(p, tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
	}
	if _, err := time.LoadLocation(*tz); err != nil {
		errs = append(errs, field.Invalid(p, tz, err.Error()))
	}
	return errs
}
