package apis

import (
	"fmt"
	"math"
	"slices"
	"strings"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apis/apfdefaults"
)

var (
	flowControlVerbs               = []string{"create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch"}
	flowDistinguisherMethods       = []string{string(flowcontrolv1.FlowDistinguisherMethodByNamespaceType), string(flowcontrolv1.FlowDistinguisherMethodByUserType)}
	flowSubjectKinds               = []string{string(flowcontrolv1.SubjectKindGroup), string(flowcontrolv1.SubjectKindServiceAccount), string(flowcontrolv1.SubjectKindUser)}
	flowPriorityLevelTypes         = []string{string(flowcontrolv1.PriorityLevelEnablementExempt), string(flowcontrolv1.PriorityLevelEnablementLimited)}
	flowLimitResponseTypes         = []string{string(flowcontrolv1.LimitResponseTypeQueue), string(flowcontrolv1.LimitResponseTypeReject)}
	flowMaxQueues            int32 = 10_000_000
)

// flowMaxHashBits is the entropy shuffle sharding may use, as upstream.
const flowMaxHashBits = 60

// validateFlowControl checks the flowcontrol kinds as upstream does; ok is
// false for other kinds.
func validateFlowControl(obj runtime.Object) (field.ErrorList, bool) {
	switch o := obj.(type) {
	case *flowcontrolv1.FlowSchema:
		return validateFlowSchema(o), true
	case *flowcontrolv1.PriorityLevelConfiguration:
		return validateFlowPriorityLevel(o), true
	}
	return nil, false
}

func validateFlowSchema(fs *flowcontrolv1.FlowSchema) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	s := &fs.Spec
	if s.MatchingPrecedence <= 0 {
		errs = append(errs, field.Invalid(spec.Child("matchingPrecedence"), s.MatchingPrecedence, "must be a positive value"))
	}
	if s.MatchingPrecedence > flowcontrolv1.FlowSchemaMaxMatchingPrecedence {
		errs = append(errs, field.Invalid(spec.Child("matchingPrecedence"), s.MatchingPrecedence, fmt.Sprintf("must not be greater than %v", flowcontrolv1.FlowSchemaMaxMatchingPrecedence)))
	}
	if s.MatchingPrecedence == 1 && fs.Name != flowcontrolv1.FlowSchemaNameExempt {
		errs = append(errs, field.Invalid(spec.Child("matchingPrecedence"), s.MatchingPrecedence, "only the schema named 'exempt' may have matchingPrecedence 1"))
	}
	if d := s.DistinguisherMethod; d != nil && !slices.Contains(flowDistinguisherMethods, string(d.Type)) {
		errs = append(errs, field.NotSupported(spec.Child("distinguisherMethod", "type"), d, flowDistinguisherMethods))
	}
	plPath := spec.Child("priorityLevelConfiguration", "name")
	if name := s.PriorityLevelConfiguration.Name; name != "" {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(name, false) {
			errs = append(errs, field.Invalid(plPath, name, msg))
		}
	} else {
		errs = append(errs, field.Required(plPath, "must reference a priority level"))
	}
	for i := range s.Rules {
		errs = append(errs, validateFlowRules(&s.Rules[i], spec.Child("rules").Index(i))...)
	}
	for _, m := range apfdefaults.MandatoryFlowSchemas() {
		if m.Name == fs.Name && !equality.Semantic.DeepEqual(fs.Spec, m.Spec) {
			errs = append(errs, field.Invalid(spec, fs.Spec, fmt.Sprintf("spec of '%s' must equal the fixed value", fs.Name)))
		}
	}
	status := field.NewPath("status", "conditions")
	seen := map[flowcontrolv1.FlowSchemaConditionType]bool{}
	for i, c := range fs.Status.Conditions {
		if seen[c.Type] {
			errs = append(errs, field.Duplicate(status.Index(i).Child("type"), c.Type))
		}
		seen[c.Type] = true
		if c.Type == "" {
			errs = append(errs, field.Required(status.Index(i).Child("type"), ""))
		}
	}
	return errs
}

func validateFlowRules(rule *flowcontrolv1.PolicyRulesWithSubjects, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(rule.Subjects) == 0 {
		errs = append(errs, field.Required(path.Child("subjects"), "subjects must contain at least one value"))
	}
	if len(rule.ResourceRules) == 0 && len(rule.NonResourceRules) == 0 {
		errs = append(errs, field.Required(path, "at least one of resourceRules and nonResourceRules has to be non-empty"))
	}
	for i := range rule.Subjects {
		errs = append(errs, validateFlowSubject(&rule.Subjects[i], path.Child("subjects").Index(i))...)
	}
	for i := range rule.ResourceRules {
		errs = append(errs, validateFlowResourceRule(&rule.ResourceRules[i], path.Child("resourceRules").Index(i))...)
	}
	for i := range rule.NonResourceRules {
		errs = append(errs, validateFlowNonResourceRule(&rule.NonResourceRules[i], path.Child("nonResourceRules").Index(i))...)
	}
	return errs
}

func validateFlowSubject(s *flowcontrolv1.Subject, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	forbid := func(child, kind string) {
		errs = append(errs, field.Forbidden(path.Child(child), fmt.Sprintf("%s is forbidden when subject kind is not '%s'", child, kind)))
	}
	switch s.Kind {
	case flowcontrolv1.SubjectKindServiceAccount:
		errs = append(errs, validateFlowSASubject(s.ServiceAccount, path.Child("serviceAccount"))...)
		if s.User != nil {
			forbid("user", "User")
		}
		if s.Group != nil {
			forbid("group", "Group")
		}
	case flowcontrolv1.SubjectKindUser:
		if s.User == nil {
			errs = append(errs, field.Required(path.Child("user"), "user is required when subject kind is 'User'"))
		} else if s.User.Name == "" {
			errs = append(errs, field.Required(path.Child("user", "name"), ""))
		}
		if s.Group != nil {
			forbid("group", "Group")
		}
		if s.ServiceAccount != nil {
			forbid("serviceAccount", "ServiceAccount")
		}
	case flowcontrolv1.SubjectKindGroup:
		if s.Group == nil {
			errs = append(errs, field.Required(path.Child("group"), "group is required when subject kind is 'Group'"))
		} else if s.Group.Name == "" {
			errs = append(errs, field.Required(path.Child("group", "name"), ""))
		}
		if s.ServiceAccount != nil {
			forbid("serviceAccount", "ServiceAccount")
		}
		if s.User != nil {
			forbid("user", "User")
		}
	default:
		errs = append(errs, field.NotSupported(path.Child("kind"), s.Kind, flowSubjectKinds))
	}
	return errs
}

func validateFlowSASubject(sa *flowcontrolv1.ServiceAccountSubject, path *field.Path) field.ErrorList {
	if sa == nil {
		return field.ErrorList{field.Required(path, "serviceAccount is required when subject kind is 'ServiceAccount'")}
	}
	var errs field.ErrorList
	if sa.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	} else if sa.Name != flowcontrolv1.NameAll {
		for _, msg := range apimachineryvalidation.ValidateServiceAccountName(sa.Name, false) {
			errs = append(errs, field.Invalid(path.Child("name"), sa.Name, msg))
		}
	}
	if sa.Namespace == "" {
		errs = append(errs, field.Required(path.Child("namespace"), "must specify namespace for service account"))
	} else {
		for _, msg := range apimachineryvalidation.ValidateNamespaceName(sa.Namespace, false) {
			errs = append(errs, field.Invalid(path.Child("namespace"), sa.Namespace, msg))
		}
	}
	return errs
}

// validateFlowVerbs checks a rule's verbs: at least one, "*" alone, known ones.
func validateFlowVerbs(verbs []string, path *field.Path) field.ErrorList {
	switch {
	case len(verbs) == 0:
		return field.ErrorList{field.Required(path, "verbs must contain at least one value")}
	case slices.Contains(verbs, flowcontrolv1.VerbAll):
		if len(verbs) > 1 {
			return field.ErrorList{field.Invalid(path, verbs, "if '*' is present, must not specify other verbs")}
		}
		return nil
	}
	for _, v := range verbs {
		if !slices.Contains(flowControlVerbs, v) {
			return field.ErrorList{field.NotSupported(path, verbs, flowControlVerbs)}
		}
	}
	return nil
}

func validateFlowNonResourceRule(rule *flowcontrolv1.NonResourcePolicyRule, path *field.Path) field.ErrorList {
	errs := validateFlowVerbs(rule.Verbs, path.Child("verbs"))
	urls := path.Child("nonResourceURLs")
	switch {
	case len(rule.NonResourceURLs) == 0:
		errs = append(errs, field.Required(urls, "nonResourceURLs must contain at least one value"))
	case slices.Contains(rule.NonResourceURLs, flowcontrolv1.NonResourceAll):
		if len(rule.NonResourceURLs) > 1 {
			errs = append(errs, field.Invalid(urls, rule.NonResourceURLs, "if '*' is present, must not specify other non-resource URLs"))
		}
	default:
		for i, u := range rule.NonResourceURLs {
			if err := validateFlowNonResourceURL(u, urls.Index(i)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

func validateFlowNonResourceURL(u string, path *field.Path) *field.Error {
	switch {
	case u == "":
		return field.Invalid(path, u, "must not be empty")
	case u == "/":
		return nil
	case !strings.HasPrefix(u, "/"):
		return field.Invalid(path, u, "must start with slash")
	case strings.ContainsAny(u, " \t\n\r"):
		return field.Invalid(path, u, "must not contain white-space")
	case strings.Contains(u, "//"):
		return field.Invalid(path, u, "must not contain double slash")
	}
	if i := strings.Index(u, "*"); i >= 0 && (i != len(u)-1 || !strings.HasSuffix(u, "/*")) {
		return field.Invalid(path, u, "wildcard can only do suffix matching")
	}
	return nil
}

func validateFlowResourceRule(rule *flowcontrolv1.ResourcePolicyRule, path *field.Path) field.ErrorList {
	errs := validateFlowVerbs(rule.Verbs, path.Child("verbs"))
	if len(rule.APIGroups) == 0 {
		errs = append(errs, field.Required(path.Child("apiGroups"), "resource rules must supply at least one api group"))
	} else if len(rule.APIGroups) > 1 && slices.Contains(rule.APIGroups, flowcontrolv1.APIGroupAll) {
		errs = append(errs, field.Invalid(path.Child("apiGroups"), rule.APIGroups, "if '*' is present, must not specify other api groups"))
	}
	if len(rule.Resources) == 0 {
		errs = append(errs, field.Required(path.Child("resources"), "resource rules must supply at least one resource"))
	} else if len(rule.Resources) > 1 && slices.Contains(rule.Resources, flowcontrolv1.ResourceAll) {
		errs = append(errs, field.Invalid(path.Child("resources"), rule.Resources, "if '*' is present, must not specify other resources"))
	}
	ns := path.Child("namespaces")
	switch {
	case len(rule.Namespaces) == 0 && !rule.ClusterScope:
		errs = append(errs, field.Required(ns, "resource rules that are not cluster scoped must supply at least one namespace"))
	case slices.Contains(rule.Namespaces, flowcontrolv1.NamespaceEvery):
		if len(rule.Namespaces) > 1 {
			errs = append(errs, field.Invalid(ns, rule.Namespaces, "if '*' is present, must not specify other namespaces"))
		}
	default:
		for i, n := range rule.Namespaces {
			for _, msg := range apimachineryvalidation.ValidateNamespaceName(n, false) {
				errs = append(errs, field.Invalid(ns.Index(i), n, "each member of this list must be '*' or a DNS-1123 label; "+msg))
			}
		}
	}
	return errs
}

func validateFlowPriorityLevel(pl *flowcontrolv1.PriorityLevelConfiguration) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	s := &pl.Spec
	if (s.Type == flowcontrolv1.PriorityLevelEnablementExempt) != (pl.Name == flowcontrolv1.PriorityLevelConfigurationNameExempt) {
		errs = append(errs, field.Invalid(spec.Child("type"), s.Type, "must be 'Exempt' if and only if `name` is 'exempt'"))
	}
	// Upstream checks the type/limited/exempt and limitResponse unions
	// declaratively: bare Forbidden and Required errors, reported after
	// the others.
	var union field.ErrorList
	forbidSet := func(limited, exempt bool) {
		if limited {
			union = append(union, field.Forbidden(spec.Child("limited"), ""))
		}
		if exempt {
			union = append(union, field.Forbidden(spec.Child("exempt"), ""))
		}
	}
	switch s.Type {
	case flowcontrolv1.PriorityLevelEnablementExempt:
		forbidSet(s.Limited != nil, false)
		if e := s.Exempt; e != nil {
			if e.NominalConcurrencyShares != nil && *e.NominalConcurrencyShares < 0 {
				errs = append(errs, field.Invalid(spec.Child("exempt", "nominalConcurrencyShares"), *e.NominalConcurrencyShares, "must be a non-negative integer"))
			}
			if e.LendablePercent != nil && (*e.LendablePercent < 0 || *e.LendablePercent > 100) {
				errs = append(errs, field.Invalid(spec.Child("exempt", "lendablePercent"), *e.LendablePercent, "must be between 0 and 100, inclusive"))
			}
		}
	case flowcontrolv1.PriorityLevelEnablementLimited:
		forbidSet(false, s.Exempt != nil)
		if s.Limited == nil {
			union = append(union, field.Required(spec.Child("limited"), ""))
		} else {
			more, moreUnion := validateFlowLimited(s.Limited, spec.Child("limited"))
			errs, union = append(errs, more...), append(union, moreUnion...)
		}
	case "":
		forbidSet(s.Limited != nil, s.Exempt != nil)
		union = append(union, field.Required(spec.Child("type"), ""))
	default:
		errs = append(errs, field.NotSupported(spec.Child("type"), s.Type, flowPriorityLevelTypes))
		forbidSet(s.Limited != nil, s.Exempt != nil)
	}
	for _, m := range apfdefaults.MandatoryPriorityLevels() {
		if m.Name != pl.Name {
			continue
		}
		have, msg := pl.Spec.DeepCopy(), fmt.Sprintf("spec of '%s' must equal the fixed value", pl.Name)
		if pl.Name == flowcontrolv1.PriorityLevelConfigurationNameExempt {
			// Only the exempt level's shares may be changed.
			have.Exempt = m.Spec.Exempt
			msg = fmt.Sprintf("spec of '%s' except the 'spec.exempt' field must equal the fixed value", pl.Name)
		}
		if !equality.Semantic.DeepEqual(*have, m.Spec) {
			errs = append(errs, field.Invalid(spec, pl.Spec, msg))
		}
	}
	status := field.NewPath("status", "conditions")
	seen := map[flowcontrolv1.PriorityLevelConfigurationConditionType]bool{}
	for i, c := range pl.Status.Conditions {
		if seen[c.Type] {
			errs = append(errs, field.Duplicate(status.Index(i).Child("type"), c.Type))
		}
		seen[c.Type] = true
		if c.Type == "" {
			errs = append(errs, field.Required(status.Index(i).Child("type"), ""))
		}
	}
	return append(errs, union...)
}

// validateFlowLimited returns the errors of a limited level's settings
// and, apart, those of its limitResponse union.
func validateFlowLimited(l *flowcontrolv1.LimitedPriorityLevelConfiguration, path *field.Path) (errs, union field.ErrorList) {
	if l.NominalConcurrencyShares != nil && *l.NominalConcurrencyShares < 0 {
		errs = append(errs, field.Invalid(path.Child("nominalConcurrencyShares"), l.NominalConcurrencyShares, "must be a non-negative integer"))
	}
	lr, lrPath := &l.LimitResponse, path.Child("limitResponse")
	switch lr.Type {
	case flowcontrolv1.LimitResponseTypeReject:
		if lr.Queuing != nil {
			union = append(union, field.Forbidden(lrPath.Child("queuing"), ""))
		}
	case flowcontrolv1.LimitResponseTypeQueue:
		if lr.Queuing == nil {
			union = append(union, field.Required(lrPath.Child("queuing"), ""))
		} else {
			errs = append(errs, validateFlowQueuing(lr.Queuing, lrPath.Child("queuing"))...)
		}
	case "":
		if lr.Queuing != nil {
			union = append(union, field.Forbidden(lrPath.Child("queuing"), ""))
		}
		union = append(union, field.Required(lrPath.Child("type"), ""))
	default:
		errs = append(errs, field.NotSupported(lrPath.Child("type"), lr.Type, flowLimitResponseTypes))
		if lr.Queuing != nil {
			union = append(union, field.Forbidden(lrPath.Child("queuing"), ""))
		}
	}
	if l.LendablePercent != nil && (*l.LendablePercent < 0 || *l.LendablePercent > 100) {
		errs = append(errs, field.Invalid(path.Child("lendablePercent"), *l.LendablePercent, "must be between 0 and 100, inclusive"))
	}
	if l.BorrowingLimitPercent != nil && *l.BorrowingLimitPercent < 0 {
		errs = append(errs, field.Invalid(path.Child("borrowingLimitPercent"), *l.BorrowingLimitPercent, "if specified, must be a non-negative integer"))
	}
	return errs, union
}

func validateFlowQueuing(q *flowcontrolv1.QueuingConfiguration, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if q.QueueLengthLimit <= 0 {
		errs = append(errs, field.Invalid(path.Child("queueLengthLimit"), q.QueueLengthLimit, "must be positive"))
	}
	if q.Queues <= 0 {
		errs = append(errs, field.Invalid(path.Child("queues"), q.Queues, "must be positive"))
	} else if q.Queues > flowMaxQueues {
		errs = append(errs, field.Invalid(path.Child("queues"), q.Queues, fmt.Sprintf("must not be greater than %d", flowMaxQueues)))
	}
	switch {
	case q.HandSize <= 0:
		errs = append(errs, field.Invalid(path.Child("handSize"), q.HandSize, "must be positive"))
	case q.HandSize > q.Queues:
		errs = append(errs, field.Invalid(path.Child("handSize"), q.HandSize, fmt.Sprintf("should not be greater than queues (%d)", q.Queues)))
	case flowShuffleEntropyBits(int(q.Queues), int(q.HandSize)) > flowMaxHashBits:
		errs = append(errs, field.Invalid(path.Child("handSize"), q.HandSize,
			fmt.Sprintf("required entropy bits of deckSize %d and handSize %d should not be greater than %d", q.Queues, q.HandSize, flowMaxHashBits)))
	}
	return errs
}

// flowShuffleEntropyBits is the number of hash bits needed to deal handSize
// distinct cards from deckSize: ceil(log2(deck!/(deck-hand)!)).
func flowShuffleEntropyBits(deckSize, handSize int) int {
	if deckSize <= 0 || handSize <= 0 {
		return 0
	}
	return int(math.Ceil(float64(handSize) * math.Log2(float64(deckSize))))
}
