package apis

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validation of the admissionregistration.k8s.io/v1 webhook
// configurations, after upstream's pkg/apis/admissionregistration/validation.

// acceptedReviewVersions are the AdmissionReview versions the server speaks.
var acceptedReviewVersions = []string{"v1", "v1beta1"}

var (
	failurePolicies     = []string{"Fail", "Ignore"}
	matchPolicies       = []string{"Equivalent", "Exact"}
	allSideEffects      = []string{"None", "NoneOnDryRun", "Some", "Unknown"}
	noSideEffects       = []string{"None", "NoneOnDryRun"}
	webhookOperations   = []string{"*", "CONNECT", "CREATE", "DELETE", "UPDATE"}
	reinvocationPolicy  = []string{"IfNeeded", "Never"}
	ruleScopes          = []string{"*", "Cluster", "Namespaced"}
	validationReasons   = []string{"Forbidden", "Invalid", "RequestEntityTooLarge"}
	patchTypes          = []string{"ApplyConfiguration", "JSONPatch"}
	mutatingOperations  = []string{"*", "CONNECT", "CREATE", "UPDATE"}
	validationActions   = []string{"Audit", "Deny", "Warn"}
	paramNotFoundAction = []string{"Deny", "Allow"}
)

// admissionOptions are the rules an update relaxes when the stored object
// already broke them (upstream's validationOptions).
type admissionOptions struct {
	ignoreMatchConditions       bool
	paramsInMatchConditions     bool
	requireNoSideEffects        bool
	requireKnownReviewVersion   bool
	requireUniqueWebhookNames   bool
	allowInvalidSelectorValues  bool
	storedMatchConditions       sets.Set[string] // expressions already stored: compiled in the stored environment
	storedValidations           sets.Set[string]
	storedMessageExpressions    sets.Set[string]
	storedAuditAnnotationValues sets.Set[string]
	storedPatchExpressions      sets.Set[string]
}

func strictWebhookOptions() admissionOptions {
	return admissionOptions{requireNoSideEffects: true, requireKnownReviewVersion: true, requireUniqueWebhookNames: true}
}

// webhook is the part of a mutating or validating webhook that is checked alike.
type webhook struct {
	name                    string
	clientConfig            admissionregistrationv1.WebhookClientConfig
	rules                   []admissionregistrationv1.RuleWithOperations
	failurePolicy           *admissionregistrationv1.FailurePolicyType
	matchPolicy             *admissionregistrationv1.MatchPolicyType
	namespaceSelector       *metav1.LabelSelector
	objectSelector          *metav1.LabelSelector
	sideEffects             *admissionregistrationv1.SideEffectClass
	timeoutSeconds          *int32
	admissionReviewVersions []string
	matchConditions         []admissionregistrationv1.MatchCondition
	reinvocationPolicy      *admissionregistrationv1.ReinvocationPolicyType // mutating only
}

func mutatingWebhooks(ws []admissionregistrationv1.MutatingWebhook) []webhook {
	out := make([]webhook, len(ws))
	for i, w := range ws {
		out[i] = webhook{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy, w.NamespaceSelector, w.ObjectSelector,
			w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions, w.ReinvocationPolicy}
	}
	return out
}

func validatingWebhooks(ws []admissionregistrationv1.ValidatingWebhook) []webhook {
	out := make([]webhook, len(ws))
	for i, w := range ws {
		out[i] = webhook{w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.MatchPolicy, w.NamespaceSelector, w.ObjectSelector,
			w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchConditions, nil}
	}
	return out
}

func validateMutatingWebhookConfiguration(c *admissionregistrationv1.MutatingWebhookConfiguration, opts admissionOptions) field.ErrorList {
	return validateWebhooks(mutatingWebhooks(c.Webhooks), true, opts)
}

func validateValidatingWebhookConfiguration(c *admissionregistrationv1.ValidatingWebhookConfiguration, opts admissionOptions) field.ErrorList {
	return validateWebhooks(validatingWebhooks(c.Webhooks), false, opts)
}

func validateMutatingWebhookConfigurationUpdate(c, old *admissionregistrationv1.MutatingWebhookConfiguration) field.ErrorList {
	opts := webhookUpdateOptions(mutatingWebhooks(old.Webhooks))
	opts.ignoreMatchConditions = len(c.Webhooks) == len(old.Webhooks)
	for i := range old.Webhooks {
		if opts.ignoreMatchConditions && !equality.Semantic.DeepEqual(c.Webhooks[i].MatchConditions, old.Webhooks[i].MatchConditions) {
			opts.ignoreMatchConditions = false
		}
	}
	return validateMutatingWebhookConfiguration(c, opts)
}

func validateValidatingWebhookConfigurationUpdate(c, old *admissionregistrationv1.ValidatingWebhookConfiguration) field.ErrorList {
	opts := webhookUpdateOptions(validatingWebhooks(old.Webhooks))
	opts.ignoreMatchConditions = len(c.Webhooks) == len(old.Webhooks)
	for i := range old.Webhooks {
		if opts.ignoreMatchConditions && !equality.Semantic.DeepEqual(c.Webhooks[i].MatchConditions, old.Webhooks[i].MatchConditions) {
			opts.ignoreMatchConditions = false
		}
	}
	return validateValidatingWebhookConfiguration(c, opts)
}

// webhookUpdateOptions enforces a rule on update only if every stored
// webhook already follows it.
func webhookUpdateOptions(old []webhook) admissionOptions {
	opts := admissionOptions{requireNoSideEffects: true, requireKnownReviewVersion: true, requireUniqueWebhookNames: true,
		storedMatchConditions: sets.New[string]()}
	names := sets.New[string]()
	for _, w := range old {
		if w.sideEffects == nil || !slices.Contains(noSideEffects, string(*w.sideEffects)) {
			opts.requireNoSideEffects = false
		}
		if len(w.admissionReviewVersions) > 0 && !slices.ContainsFunc(w.admissionReviewVersions, isAcceptedReviewVersion) {
			opts.requireKnownReviewVersion = false
		}
		if names.Has(w.name) {
			opts.requireUniqueWebhookNames = false
		}
		names.Insert(w.name)
		for _, sel := range []*metav1.LabelSelector{w.namespaceSelector, w.objectSelector} {
			if sel != nil && len(metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, nil)) > 0 {
				opts.allowInvalidSelectorValues = true
			}
		}
		for _, mc := range w.matchConditions {
			opts.storedMatchConditions.Insert(mc.Expression)
		}
	}
	return opts
}

func isAcceptedReviewVersion(v string) bool { return slices.Contains(acceptedReviewVersions, v) }

func validateWebhooks(hooks []webhook, mutating bool, opts admissionOptions) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range hooks {
		p := field.NewPath("webhooks").Index(i)
		errs = append(errs, validateWebhook(&hooks[i], mutating, opts, p)...)
		errs = append(errs, validateReviewVersions(hooks[i].admissionReviewVersions, opts.requireKnownReviewVersion, p.Child("admissionReviewVersions"))...)
		if name := hooks[i].name; opts.requireUniqueWebhookNames && name != "" {
			if names.Has(name) {
				errs = append(errs, field.Duplicate(p.Child("name"), name))
			}
			names.Insert(name)
		}
	}
	return errs
}

func validateWebhook(w *webhook, mutating bool, opts admissionOptions, p *field.Path) field.ErrorList {
	errs := validation.IsFullyQualifiedName(p.Child("name"), w.name)
	for i := range w.rules {
		errs = append(errs, validateRuleWithOperations(&w.rules[i], p.Child("rules").Index(i))...)
	}
	errs = append(errs, optionalEnum(w.failurePolicy, failurePolicies, p.Child("failurePolicy"))...)
	errs = append(errs, optionalEnum(w.matchPolicy, matchPolicies, p.Child("matchPolicy"))...)
	allowed := allSideEffects
	if opts.requireNoSideEffects {
		allowed = noSideEffects
	}
	if w.sideEffects == nil {
		errs = append(errs, field.Required(p.Child("sideEffects"), "must specify one of "+strings.Join(allowed, ", ")))
	} else if !slices.Contains(allowed, string(*w.sideEffects)) {
		errs = append(errs, field.NotSupported(p.Child("sideEffects"), *w.sideEffects, allowed))
	}
	if t := w.timeoutSeconds; t != nil && (*t > 30 || *t < 1) {
		errs = append(errs, field.Invalid(p.Child("timeoutSeconds"), *t, "the timeout value must be between 1 and 30 seconds"))
	}
	selOpts := metav1validation.LabelSelectorValidationOptions{AllowInvalidLabelValueInSelector: opts.allowInvalidSelectorValues}
	if w.namespaceSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(w.namespaceSelector, selOpts, p.Child("namespaceSelector"))...)
	}
	if w.objectSelector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(w.objectSelector, selOpts, p.Child("objectSelector"))...)
	}
	if mutating {
		errs = append(errs, optionalEnum(w.reinvocationPolicy, reinvocationPolicy, p.Child("reinvocationPolicy"))...)
	}
	errs = append(errs, validateClientConfig(&w.clientConfig, p.Child("clientConfig"))...)
	if !opts.ignoreMatchConditions {
		errs = append(errs, validateMatchConditions(w.matchConditions, opts, p.Child("matchConditions"))...)
	}
	return errs
}

// optionalEnum refuses a set value outside allowed (sorted, as upstream lists them).
func optionalEnum[T ~string](v *T, allowed []string, p *field.Path) field.ErrorList {
	if v != nil && !slices.Contains(allowed, string(*v)) {
		return field.ErrorList{field.NotSupported(p, *v, allowed)}
	}
	return nil
}

func validateReviewVersions(versions []string, requireKnown bool, p *field.Path) field.ErrorList {
	if len(versions) == 0 {
		return field.ErrorList{field.Required(p, "must specify one of "+strings.Join(acceptedReviewVersions, ", "))}
	}
	var errs field.ErrorList
	seen := sets.New[string]()
	known := false
	for i, v := range versions {
		if seen.Has(v) {
			errs = append(errs, field.Invalid(p.Index(i), v, "duplicate version"))
			continue
		}
		seen.Insert(v)
		for _, msg := range validation.IsDNS1035Label(v) {
			errs = append(errs, field.Invalid(p.Index(i), v, msg))
		}
		known = known || isAcceptedReviewVersion(v)
	}
	if requireKnown && !known {
		errs = append(errs, field.Invalid(p, versions, "must include at least one of "+strings.Join(acceptedReviewVersions, ", ")))
	}
	return errs
}

func validateClientConfig(cc *admissionregistrationv1.WebhookClientConfig, p *field.Path) field.ErrorList {
	switch {
	case (cc.URL == nil) == (cc.Service == nil):
		return field.ErrorList{field.Required(p, "exactly one of url or service is required")}
	case cc.URL != nil:
		return validateWebhookURL(*cc.URL, p.Child("url"))
	}
	s := cc.Service
	port := int32(0)
	if s.Port != nil {
		port = *s.Port
	}
	// Upstream passes the service's name and namespace to a helper whose
	// parameters are (namespace, name): a missing namespace is reported
	// as a missing name and the other way round. Kept for parity.
	return validateWebhookService(s.Name, s.Namespace, s.Path, port, p.Child("service"))
}

func validateWebhookURL(raw string, p *field.Path) field.ErrorList {
	const form = "; desired format: https://host[/path]"
	u, err := url.Parse(raw)
	if err != nil {
		return field.ErrorList{field.Required(p, "url must be a valid URL: "+err.Error()+form)}
	}
	var errs field.ErrorList
	if u.Scheme != "https" {
		errs = append(errs, field.Invalid(p, u.Scheme, "'https' is the only allowed URL scheme"+form))
	}
	if u.Host == "" {
		errs = append(errs, field.Invalid(p, u.Host, "host must be specified"+form))
	}
	if u.User != nil {
		errs = append(errs, field.Invalid(p, u.User.String(), "user information is not permitted in the URL"))
	}
	if u.Fragment != "" {
		errs = append(errs, field.Invalid(p, u.Fragment, "fragments are not permitted in the URL"))
	}
	if u.RawQuery != "" {
		errs = append(errs, field.Invalid(p, u.RawQuery, "query parameters are not permitted in the URL"))
	}
	return errs
}

// validateWebhookService checks a service reference; see validateClientConfig
// for why namespace and name arrive swapped.
func validateWebhookService(namespace, name string, path *string, port int32, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	if namespace == "" {
		errs = append(errs, field.Required(p.Child("namespace"), ""))
	}
	if msgs := validation.IsValidPortNum(int(port)); msgs != nil {
		errs = append(errs, field.Invalid(p.Child("port"), port, "port is not valid: "+strings.Join(msgs, ", ")))
	}
	if path == nil || *path == "/" || *path == "" {
		return errs
	}
	urlPath := *path
	if urlPath == "//" {
		return append(errs, field.Invalid(p.Child("path"), urlPath, "segment[0] may not be empty"))
	}
	if !strings.HasPrefix(urlPath, "/") {
		errs = append(errs, field.Invalid(p.Child("path"), urlPath, "must start with a '/'"))
	}
	for i, step := range strings.Split(strings.TrimSuffix(urlPath[1:], "/"), "/") {
		if step == "" {
			errs = append(errs, field.Invalid(p.Child("path"), urlPath, fmt.Sprintf("segment[%d] may not be empty", i)))
			continue
		}
		for _, msg := range validation.IsDNS1123Subdomain(step) {
			errs = append(errs, field.Invalid(p.Child("path"), urlPath, fmt.Sprintf("segment[%d]: %v", i, msg)))
		}
	}
	return errs
}

func validateRuleWithOperations(r *admissionregistrationv1.RuleWithOperations, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	ops := p.Child("operations")
	if len(r.Operations) == 0 {
		errs = append(errs, field.Required(ops, ""))
	}
	if len(r.Operations) > 1 && slices.Contains(r.Operations, admissionregistrationv1.OperationAll) {
		errs = append(errs, field.Invalid(ops, r.Operations, "if '*' is present, must not specify other operations"))
	}
	for i, op := range r.Operations {
		if !slices.Contains(webhookOperations, string(op)) {
			errs = append(errs, field.NotSupported(ops.Index(i), op, webhookOperations))
		}
	}
	return append(errs, validateRule(&r.Rule, p)...)
}

func validateRule(r *admissionregistrationv1.Rule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(r.APIGroups) == 0 {
		errs = append(errs, field.Required(p.Child("apiGroups"), ""))
	}
	if len(r.APIGroups) > 1 && slices.Contains(r.APIGroups, "*") {
		errs = append(errs, field.Invalid(p.Child("apiGroups"), r.APIGroups, "if '*' is present, must not specify other API groups"))
	}
	if len(r.APIVersions) == 0 {
		errs = append(errs, field.Required(p.Child("apiVersions"), ""))
	}
	if len(r.APIVersions) > 1 && slices.Contains(r.APIVersions, "*") {
		errs = append(errs, field.Invalid(p.Child("apiVersions"), r.APIVersions, "if '*' is present, must not specify other API versions"))
	}
	for i, v := range r.APIVersions {
		if v == "" {
			errs = append(errs, field.Required(p.Child("apiVersions").Index(i), ""))
		}
	}
	errs = append(errs, validateRuleResources(r.Resources, p.Child("resources"))...)
	return append(errs, optionalEnum(r.Scope, ruleScopes, p.Child("scope"))...)
}

// validateRuleResources checks resource[/subresource] patterns and their wildcards.
func validateRuleResources(resources []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(resources) == 0 {
		errs = append(errs, field.Required(p, ""))
	}
	anySub := sets.New[string]() // x of "x/*"
	anyRes := sets.New[string]() // x of "*/x"
	doubleWildcard, singleWildcard, plain := false, false, false
	for i, rs := range resources {
		if rs == "" {
			errs = append(errs, field.Required(p.Index(i), ""))
			continue
		}
		doubleWildcard = doubleWildcard || rs == "*/*"
		singleWildcard = singleWildcard || rs == "*"
		res, sub, hasSub := strings.Cut(rs, "/")
		if !hasSub {
			plain = rs != "*"
			continue
		}
		if anySub.Has(res) {
			errs = append(errs, field.Invalid(p.Index(i), rs, fmt.Sprintf("if '%s/*' is present, must not specify %s", res, rs)))
		}
		if anyRes.Has(sub) {
			errs = append(errs, field.Invalid(p.Index(i), rs, fmt.Sprintf("if '*/%s' is present, must not specify %s", sub, rs)))
		}
		if sub == "*" {
			anySub.Insert(res)
		}
		if res == "*" {
			anyRes.Insert(sub)
		}
	}
	if len(resources) > 1 && doubleWildcard {
		errs = append(errs, field.Invalid(p, resources, "if '*/*' is present, must not specify other resources"))
	}
	if singleWildcard && plain {
		errs = append(errs, field.Invalid(p, resources, "if '*' is present, must not specify other resources without subresources"))
	}
	return errs
}

func validateMatchConditions(conds []admissionregistrationv1.MatchCondition, opts admissionOptions, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(conds) > 64 {
		errs = append(errs, field.TooMany(p, len(conds), 64))
	}
	names := sets.New[string]()
	for i, c := range conds {
		cp := p.Index(i)
		if expr := strings.TrimSpace(c.Expression); expr == "" {
			errs = append(errs, field.Required(cp.Child("expression"), ""))
		} else {
			vars := celVars{params: opts.paramsInMatchConditions, authorizer: true}
			if ferr, _ := newStatelessCEL().compile(expr, vars, opts.storedMatchConditions.Has(expr), celBool, cp.Child("expression"), expr); ferr != nil {
				errs = append(errs, ferr)
			}
		}
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsQualifiedName(c.Name) {
				errs = append(errs, field.Invalid(cp.Child("name"), c.Name, msg))
			}
		}
		if c.Name != "" {
			if names.Has(c.Name) {
				errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
			}
			names.Insert(c.Name)
		}
	}
	return errs
}

// validateNamedRule checks a policy's resource rule and its resource names.
func validateNamedRule(r *admissionregistrationv1.NamedRuleWithOperations, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i, n := range r.ResourceNames {
		for _, msg := range content.IsPathSegmentName(n) {
			errs = append(errs, field.Invalid(p.Child("resourceNames").Index(i), n, msg))
		}
		if names.Has(n) {
			errs = append(errs, field.Duplicate(p.Child("resourceNames").Index(i), n))
		}
		names.Insert(n)
	}
	return append(errs, validateRuleWithOperations(&r.RuleWithOperations, p)...)
}

func validateMatchResources(m *admissionregistrationv1.MatchResources, p *field.Path) field.ErrorList {
	if m == nil {
		return nil
	}
	var errs field.ErrorList
	if m.MatchPolicy == nil {
		errs = append(errs, field.Required(p.Child("matchPolicy"), ""))
	} else {
		errs = append(errs, optionalEnum(m.MatchPolicy, matchPolicies, p.Child("matchPolicy"))...)
	}
	for _, s := range []struct {
		name string
		sel  *metav1.LabelSelector
	}{{"namespaceSelector", m.NamespaceSelector}, {"objectSelector", m.ObjectSelector}} {
		if s.sel == nil {
			errs = append(errs, field.Required(p.Child(s.name), ""))
		} else {
			errs = append(errs, metav1validation.ValidateLabelSelector(s.sel, metav1validation.LabelSelectorValidationOptions{}, p.Child(s.name))...)
		}
	}
	for i := range m.ResourceRules {
		errs = append(errs, validateNamedRule(&m.ResourceRules[i], p.Child("resourceRules").Index(i))...)
	}
	for i := range m.ExcludeResourceRules {
		errs = append(errs, validateNamedRule(&m.ExcludeResourceRules[i], p.Child("excludeResourceRules").Index(i))...)
	}
	return errs
}
