package apis

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/util/jsonpath"
)

// Validation of the CEL admission policies and their bindings, after
// upstream's pkg/apis/admissionregistration/validation.

const (
	maxAuditAnnotations              = 20
	maxAuditAnnotationExpressionSize = 5 * 1024
)

func validateValidatingAdmissionPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy, opts admissionOptions) field.ErrorList {
	spec := &p.Spec
	fld := field.NewPath("spec")
	// Policies without variables compile in the shared environment, which
	// has no `variables`; with variables, each policy gets its own.
	compiler := newStatelessCEL()
	if len(spec.Variables) > 0 {
		var err error
		if compiler, err = newCompositionCEL(); err != nil {
			return field.ErrorList{field.InternalError(fld, err)}
		}
	}
	errs := validatePolicyCommon(spec.FailurePolicy, spec.ParamKind, spec.MatchConstraints, &opts, fld)
	if !opts.ignoreMatchConditions {
		errs = append(errs, validateMatchConditions(spec.MatchConditions, opts, fld.Child("matchConditions"))...)
	}
	vars := celVars{params: spec.ParamKind != nil, authorizer: true}
	for i, v := range spec.Variables {
		errs = append(errs, validatePolicyVariable(compiler, v, vars, opts, fld.Child("variables").Index(i))...)
	}
	if len(spec.Validations) == 0 && len(spec.AuditAnnotations) == 0 {
		const msg = "validations or auditAnnotations must contain at least one item"
		return append(errs, field.Required(fld.Child("validations"), msg), field.Required(fld.Child("auditAnnotations"), msg))
	}
	for i := range spec.Validations {
		errs = append(errs, validatePolicyValidation(compiler, &spec.Validations[i], vars, opts, fld.Child("validations").Index(i))...)
	}
	if spec.AuditAnnotations != nil {
		if len(spec.AuditAnnotations) > maxAuditAnnotations {
			errs = append(errs, field.Invalid(fld.Child("auditAnnotations"), spec.AuditAnnotations, fmt.Sprintf("must not have more than %d auditAnnotations", maxAuditAnnotations)))
		}
		keys := sets.New[string]()
		for i, a := range spec.AuditAnnotations {
			ap := fld.Child("auditAnnotations").Index(i)
			errs = append(errs, validateAuditAnnotation(compiler, p.Name, a, vars, opts, ap)...)
			if keys.Has(a.Key) {
				errs = append(errs, field.Duplicate(ap.Child("key"), a.Key))
			}
			keys.Insert(a.Key)
		}
	}
	return errs
}

func validateValidatingAdmissionPolicyUpdate(p, old *admissionregistrationv1.ValidatingAdmissionPolicy) field.ErrorList {
	opts := admissionOptions{
		ignoreMatchConditions: equality.Semantic.DeepEqual(p.Spec.ParamKind, old.Spec.ParamKind) &&
			equality.Semantic.DeepEqual(p.Spec.MatchConditions, old.Spec.MatchConditions),
		storedMatchConditions:       sets.New[string](),
		storedValidations:           sets.New[string](),
		storedMessageExpressions:    sets.New[string](),
		storedAuditAnnotationValues: sets.New[string](),
	}
	for _, mc := range old.Spec.MatchConditions {
		opts.storedMatchConditions.Insert(mc.Expression)
	}
	for _, v := range old.Spec.Validations {
		opts.storedValidations.Insert(v.Expression)
		if v.MessageExpression != "" {
			opts.storedMessageExpressions.Insert(v.MessageExpression)
		}
	}
	for _, a := range old.Spec.AuditAnnotations {
		opts.storedAuditAnnotationValues.Insert(a.ValueExpression)
	}
	return append(validateValidatingAdmissionPolicy(p, opts), validatePolicyStatus(&p.Status)...)
}

// validatePolicyCommon checks what validating and mutating policies share:
// failurePolicy, paramKind and matchConstraints. A paramKind makes
// `params` available to match conditions.
func validatePolicyCommon(fp *admissionregistrationv1.FailurePolicyType, pk *admissionregistrationv1.ParamKind,
	mc *admissionregistrationv1.MatchResources, opts *admissionOptions, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if fp == nil {
		errs = append(errs, field.Required(fld.Child("failurePolicy"), ""))
	} else {
		errs = append(errs, optionalEnum(fp, failurePolicies, fld.Child("failurePolicy"))...)
	}
	if pk != nil {
		opts.paramsInMatchConditions = true
		errs = append(errs, validateParamKind(pk, fld.Child("paramKind"))...)
	}
	if mc == nil {
		return append(errs, field.Required(fld.Child("matchConstraints"), ""))
	}
	errs = append(errs, validateMatchResources(mc, fld.Child("matchConstraints"))...)
	// At least one resource rule gives the expressions their types.
	if len(mc.ResourceRules) == 0 {
		errs = append(errs, field.Required(fld.Child("matchConstraints", "resourceRules"), ""))
	}
	return errs
}

func validateParamKind(pk *admissionregistrationv1.ParamKind, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	av := fld.Child("apiVersion")
	switch group, version, err := splitGroupVersion(pk.APIVersion); {
	case pk.APIVersion == "":
		errs = append(errs, field.Required(av, ""))
	case err != nil:
		errs = append(errs, field.Invalid(av, pk.APIVersion, err.Error()))
	default:
		// The same rules as an APIService's group and version.
		if group != "" {
			if msgs := validation.IsDNS1123Subdomain(group); len(msgs) > 0 {
				errs = append(errs, field.Invalid(av, group, strings.Join(msgs, ",")))
			}
		}
		if version == "" {
			errs = append(errs, field.Invalid(av, pk.APIVersion, "version must be specified"))
		} else if msgs := validation.IsDNS1035Label(version); len(msgs) > 0 {
			errs = append(errs, field.Invalid(av, version, strings.Join(msgs, ",")))
		}
	}
	if pk.Kind == "" {
		errs = append(errs, field.Required(fld.Child("kind"), ""))
	} else if msgs := validation.IsDNS1035Label(strings.ToLower(pk.Kind)); len(msgs) > 0 {
		errs = append(errs, field.Invalid(fld.Child("kind"), pk.Kind, "may have mixed case, but should otherwise match: "+strings.Join(msgs, ",")))
	}
	return errs
}

// splitGroupVersion parses "group/version" or "version" as upstream's
// policy validation does ("/" alone is an empty group version).
func splitGroupVersion(gv string) (group, version string, err error) {
	if gv == "" || gv == "/" {
		return "", "", nil
	}
	switch strings.Count(gv, "/") {
	case 0:
		return "", gv, nil
	case 1:
		group, version, _ = strings.Cut(gv, "/")
		return group, version, nil
	}
	return "", "", fmt.Errorf("unexpected GroupVersion string: %v", gv)
}

var celIdentifier = regexp.MustCompile(`^[_a-zA-Z][_a-zA-Z0-9]*$`)

var celReserved = sets.New("true", "false", "null", "in", "as", "break", "const", "continue", "else",
	"for", "function", "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while")

func validatePolicyVariable(c *admissionCEL, v admissionregistrationv1.Variable, vars celVars, opts admissionOptions, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(v.Name) == "" {
		errs = append(errs, field.Required(fld.Child("name"), "name is not specified"))
	} else if !celIdentifier.MatchString(v.Name) || celReserved.Has(v.Name) {
		errs = append(errs, field.Invalid(fld.Child("name"), v.Name, "must be a valid CEL identifier"))
	}
	if strings.TrimSpace(v.Expression) == "" {
		return append(errs, field.Required(fld.Child("expression"), "expression is not specified"))
	}
	if c.variables == nil {
		return append(errs, field.InternalError(fld, fmt.Errorf("variable composition is not allowed")))
	}
	// Upstream looks variables up among the stored validation expressions.
	if ferr := c.compileVariable(v.Name, v.Expression, vars, opts.storedValidations.Has(v.Expression), fld.Child("expression")); ferr != nil {
		errs = append(errs, ferr)
	}
	return errs
}

var newlines = regexp.MustCompile(`[\n\r]+`)

func validatePolicyValidation(c *admissionCEL, v *admissionregistrationv1.Validation, vars celVars, opts admissionOptions, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(v.Expression) == "" {
		errs = append(errs, field.Required(fld.Child("expression"), "expression is not specified"))
	} else if ferr, _ := c.compile(v.Expression, vars, opts.storedValidations.Has(v.Expression), celBool, fld.Child("expression"), v.Expression); ferr != nil {
		errs = append(errs, ferr)
	}
	msgExpr := strings.TrimSpace(v.MessageExpression)
	switch {
	case v.MessageExpression != "" && msgExpr == "":
		errs = append(errs, field.Invalid(fld.Child("messageExpression"), v.MessageExpression, "must be non-empty if specified"))
	case msgExpr != "":
		// Message expressions see params only when match conditions do,
		// and never the authorizer.
		mv := celVars{params: opts.paramsInMatchConditions}
		if ferr, _ := c.compile(v.MessageExpression, mv, opts.storedMessageExpressions.Has(v.MessageExpression), celString, fld.Child("messageExpression"), v.MessageExpression); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	msg := strings.TrimSpace(v.Message)
	switch {
	case v.Message != "" && msg == "":
		errs = append(errs, field.Invalid(fld.Child("message"), v.Message, "must be non-empty if specified"))
	case newlines.MatchString(msg):
		errs = append(errs, field.Invalid(fld.Child("message"), v.Message, "must not contain line breaks"))
	}
	if v.Reason != nil {
		errs = append(errs, optionalEnum(v.Reason, validationReasons, fld.Child("reason"))...)
	}
	return errs
}

func validateAuditAnnotation(c *admissionCEL, policyName string, a admissionregistrationv1.AuditAnnotation, vars celVars, opts admissionOptions, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if policyName != "" {
		for _, msg := range validation.IsQualifiedName(policyName + "/" + a.Key) {
			errs = append(errs, field.Invalid(fld.Child("key"), policyName+"/"+a.Key, msg))
		}
	} else {
		errs = append(errs, field.Invalid(fld.Child("key"), a.Key, "requires metadata.name be non-empty"))
	}
	expr := strings.TrimSpace(a.ValueExpression)
	switch {
	case expr == "":
		errs = append(errs, field.Required(fld.Child("valueExpression"), "valueExpression is not specified"))
	case len(expr) > maxAuditAnnotationExpressionSize:
		errs = append(errs, field.Required(fld.Child("valueExpression"), fmt.Sprintf("must not exceed %d bytes in length", maxAuditAnnotationExpressionSize)))
	default:
		if ferr, _ := c.compile(expr, vars, opts.storedAuditAnnotationValues.Has(a.ValueExpression), celStringOrNull, fld.Child("valueExpression"), a.ValueExpression); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return errs
}

// validatePolicyStatus checks the type-checking warnings and conditions a
// controller writes to a ValidatingAdmissionPolicy's status.
func validatePolicyStatus(st *admissionregistrationv1.ValidatingAdmissionPolicyStatus) field.ErrorList {
	var errs field.ErrorList
	fld := field.NewPath("status")
	if tc := st.TypeChecking; tc != nil {
		for i, w := range tc.ExpressionWarnings {
			wp := fld.Child("typeChecking", "expressionWarnings").Index(i)
			if w.Warning == "" {
				errs = append(errs, field.Required(wp.Child("warning"), ""))
			}
			errs = append(errs, validateWarningFieldRef(w.FieldRef, wp.Child("fieldRef"))...)
		}
	}
	return append(errs, metav1validation.ValidateConditions(st.Conditions, fld.Child("conditions"))...)
}

func validateWarningFieldRef(ref string, fld *field.Path) field.ErrorList {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return field.ErrorList{field.Required(fld, "")}
	}
	if err := jsonpath.New("spec").Parse("{" + ref + "}"); err != nil {
		return field.ErrorList{field.Invalid(fld, ref, fmt.Sprintf("invalid JSONPath: %v", err))}
	}
	return nil
}

func validateMutatingAdmissionPolicy(p *admissionregistrationv1.MutatingAdmissionPolicy, opts admissionOptions) field.ErrorList {
	spec := &p.Spec
	fld := field.NewPath("spec")
	compiler, err := newCompositionCEL()
	if err != nil {
		return field.ErrorList{field.InternalError(fld, err)}
	}
	errs := validatePolicyCommon(spec.FailurePolicy, spec.ParamKind, spec.MatchConstraints, &opts, fld)
	if spec.MatchConstraints != nil {
		errs = append(errs, mutatingOperationErrors(spec.MatchConstraints.ResourceRules, fld.Child("matchConstraints", "resourceRules", "operations"))...)
	}
	if !opts.ignoreMatchConditions {
		errs = append(errs, validateMatchConditions(spec.MatchConditions, opts, fld.Child("matchConditions"))...)
	}
	vars := celVars{params: spec.ParamKind != nil, authorizer: true}
	for i, v := range spec.Variables {
		errs = append(errs, validatePolicyVariable(compiler, v, vars, opts, fld.Child("variables").Index(i))...)
	}
	if len(spec.Mutations) == 0 {
		errs = append(errs, field.Required(fld.Child("mutations"), "mutations must contain at least one item"))
	}
	for i := range spec.Mutations {
		errs = append(errs, validateMutation(compiler, &spec.Mutations[i], spec.ParamKind != nil, opts, fld.Child("mutations").Index(i))...)
	}
	if spec.ReinvocationPolicy == "" {
		errs = append(errs, field.Required(fld.Child("reinvocationPolicy"), ""))
	} else {
		errs = append(errs, optionalEnum(&spec.ReinvocationPolicy, reinvocationPolicy, fld.Child("reinvocationPolicy"))...)
	}
	return errs
}

func validateMutatingAdmissionPolicyUpdate(p, old *admissionregistrationv1.MutatingAdmissionPolicy) field.ErrorList {
	opts := admissionOptions{
		ignoreMatchConditions: equality.Semantic.DeepEqual(p.Spec.ParamKind, old.Spec.ParamKind) &&
			equality.Semantic.DeepEqual(p.Spec.MatchConditions, old.Spec.MatchConditions),
		storedMatchConditions:  sets.New[string](),
		storedPatchExpressions: sets.New[string](),
	}
	for _, mc := range old.Spec.MatchConditions {
		opts.storedMatchConditions.Insert(mc.Expression)
	}
	for _, m := range old.Spec.Mutations {
		if m.ApplyConfiguration != nil {
			opts.storedPatchExpressions.Insert(m.ApplyConfiguration.Expression)
		}
	}
	return validateMutatingAdmissionPolicy(p, opts)
}

// mutatingOperationErrors refuses DELETE: a mutating policy only changes
// objects being created or updated.
func mutatingOperationErrors(rules []admissionregistrationv1.NamedRuleWithOperations, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, r := range rules {
		for _, op := range r.Operations {
			if !slices.Contains(mutatingOperations, string(op)) {
				errs = append(errs, field.NotSupported(fld, op, mutatingOperations))
			}
		}
	}
	return errs
}

func validateMutation(c *admissionCEL, m *admissionregistrationv1.Mutation, hasParams bool, opts admissionOptions, fld *field.Path) field.ErrorList {
	vars := celVars{params: hasParams, authorizer: true, patchTypes: true}
	compilePatch := func(expr string, want []*cel.Type, p *field.Path) field.ErrorList {
		trimmed := strings.TrimSpace(expr)
		if trimmed == "" {
			return field.ErrorList{field.Required(p.Child("expression"), "")}
		}
		// Upstream checks both patch kinds against the stored apply configurations.
		if ferr, _ := c.compile(trimmed, vars, opts.storedPatchExpressions.Has(expr), want, p.Child("expression"), trimmed); ferr != nil {
			return field.ErrorList{ferr}
		}
		return nil
	}
	var errs field.ErrorList
	switch m.PatchType {
	case "":
		errs = append(errs, field.Required(fld.Child("patchType"), ""))
	case admissionregistrationv1.PatchTypeJSONPatch:
		if m.JSONPatch == nil {
			errs = append(errs, field.Required(fld.Child("jsonPatch"), "must be specified when patchType is JSONPatch"))
		} else {
			errs = append(errs, compilePatch(m.JSONPatch.Expression, celJSONPatchList, fld.Child("jsonPatch"))...)
		}
		if m.ApplyConfiguration != nil {
			errs = append(errs, field.Invalid(fld.Child("applyConfiguration"), "{applyConfiguration}", "must not be specified when patchType is JSONPatch"))
		}
	case admissionregistrationv1.PatchTypeApplyConfiguration:
		if m.ApplyConfiguration == nil {
			errs = append(errs, field.Required(fld.Child("applyConfiguration"), "must be specified when patchType is ApplyConfiguration"))
		} else {
			errs = append(errs, compilePatch(m.ApplyConfiguration.Expression, celApplyConfig, fld.Child("applyConfiguration"))...)
		}
		if m.JSONPatch != nil {
			errs = append(errs, field.Invalid(fld.Child("jsonPatch"), "{jsonPatch}", "must not be specified when patchType is ApplyConfiguration"))
		}
	default:
		errs = append(errs, field.NotSupported(fld.Child("patchType"), m.PatchType, patchTypes))
	}
	return errs
}

func validateValidatingAdmissionPolicyBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) field.ErrorList {
	fld := field.NewPath("spec")
	errs := validateBindingCommon(b.Spec.PolicyName, b.Spec.ParamRef, b.Spec.MatchResources, fld)
	return append(errs, validateValidationActions(b.Spec.ValidationActions, fld.Child("validationActions"))...)
}

func validateMutatingAdmissionPolicyBinding(b *admissionregistrationv1.MutatingAdmissionPolicyBinding) field.ErrorList {
	fld := field.NewPath("spec")
	errs := validateBindingCommon(b.Spec.PolicyName, b.Spec.ParamRef, b.Spec.MatchResources, fld)
	if b.Spec.MatchResources != nil {
		errs = append(errs, mutatingOperationErrors(b.Spec.MatchResources.ResourceRules, fld.Child("matchResources", "resourceRules", "operations"))...)
	}
	return errs
}

func validateBindingCommon(policy string, ref *admissionregistrationv1.ParamRef, mr *admissionregistrationv1.MatchResources, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	if policy == "" {
		errs = append(errs, field.Required(fld.Child("policyName"), ""))
	} else {
		for _, msg := range apivalidation.NameIsDNSSubdomain(policy, false) {
			errs = append(errs, field.Invalid(fld.Child("policyName"), policy, msg))
		}
	}
	errs = append(errs, validateParamRef(ref, fld.Child("paramRef"))...)
	return append(errs, validateMatchResources(mr, fld.Child("matchResources"))...)
}

func validateParamRef(ref *admissionregistrationv1.ParamRef, fld *field.Path) field.ErrorList {
	if ref == nil {
		return nil
	}
	var errs field.ErrorList
	const exclusive = "name and selector are mutually exclusive"
	if ref.Name != "" {
		for _, msg := range content.IsPathSegmentName(ref.Name) {
			errs = append(errs, field.Invalid(fld.Child("name"), ref.Name, msg))
		}
		if ref.Selector != nil {
			errs = append(errs, field.Forbidden(fld.Child("name"), exclusive))
		}
	}
	if ref.Selector != nil {
		errs = append(errs, metav1validation.ValidateLabelSelector(ref.Selector, metav1validation.LabelSelectorValidationOptions{}, fld.Child("selector"))...)
		if ref.Name != "" {
			errs = append(errs, field.Forbidden(fld.Child("selector"), exclusive))
		}
	}
	if ref.Name == "" && ref.Selector == nil {
		errs = append(errs, field.Required(fld, "one of name or selector must be specified"))
	}
	if a := ref.ParameterNotFoundAction; a == nil || *a == "" {
		errs = append(errs, field.Required(fld.Child("parameterNotFoundAction"), ""))
	} else if !slices.Contains(paramNotFoundAction, string(*a)) {
		errs = append(errs, field.NotSupported(fld.Child("parameterNotFoundAction"), a, paramNotFoundAction))
	}
	return errs
}

func validateValidationActions(actions []admissionregistrationv1.ValidationAction, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, a := range actions {
		if !slices.Contains(validationActions, string(a)) {
			errs = append(errs, field.NotSupported(fld.Index(i), a, validationActions))
		}
		if seen.Has(string(a)) {
			errs = append(errs, field.Duplicate(fld.Index(i), a))
		}
		seen.Insert(string(a))
	}
	if seen.Has("Deny") && seen.Has("Warn") {
		errs = append(errs, field.Invalid(fld, actions, "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"))
	}
	if len(seen) == 0 {
		// Declarative validation reports this, without a detail.
		errs = append(errs, field.Required(fld, ""))
	}
	return errs
}
