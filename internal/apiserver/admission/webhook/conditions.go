package webhook

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// conditionEnv is the CEL environment of match conditions: Kubernetes' base
// libraries plus the variables above. Built once; it is costly.
var conditionEnv = sync.OnceValues(func() (*cel.Env, error) {
	requestType := dynamicadmission.AdmissionRequestType()
	set, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(
		environment.VersionedOptions{
			IntroducedVersion: version.MajorMinor(1, 0),
			EnvOptions: []cel.EnvOption{
				cel.Variable(dynamicadmission.ObjectVar, cel.DynType),
				cel.Variable(dynamicadmission.OldObjectVar, cel.DynType),
				cel.Variable(dynamicadmission.RequestVar, requestType.CelType()),
				cel.Variable(dynamicadmission.AuthorizerVar, library.AuthorizerType),
				cel.Variable(dynamicadmission.RequestResourceAuthorizerVar, library.ResourceCheckType),
			},
			DeclTypes: []*apiservercel.DeclType{requestType},
		},
		environment.StrictCostOpt,
	)
	if err != nil {
		return nil, fmt.Errorf("building match condition environment: %w", err)
	}
	// Stored expressions: configurations written by older servers must
	// keep evaluating.
	return set.Env(environment.StoredExpressions)
})

// condition is one compiled matchCondition; err holds a compile failure,
// which counts as an evaluation error (and so follows failurePolicy), as
// upstream treats it.
type condition struct {
	expression string
	program    cel.Program
	err        error
}

func compileConditions(conds []admissionregistrationv1.MatchCondition) []condition {
	out := make([]condition, 0, len(conds))
	for _, mc := range conds {
		out = append(out, compileCondition(mc))
	}
	return out
}

func compileCondition(mc admissionregistrationv1.MatchCondition) condition {
	c := condition{expression: mc.Expression}
	env, err := conditionEnv()
	if err != nil {
		c.err = err
		return c
	}
	ast, issues := env.Compile(mc.Expression)
	if issues != nil && issues.Err() != nil {
		c.err = fmt.Errorf("compilation error: compilation failed: %s", issues.String())
		return c
	}
	if out := ast.OutputType(); !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) { // dyn: checked at run time, as upstream
		c.err = fmt.Errorf("compilation error: must evaluate to bool but got %v", ast.OutputType())
		return c
	}
	c.program, err = env.Program(ast,
		cel.InterruptCheckFrequency(100),
		cel.CostLimit(celconfig.RuntimeCELCostBudgetMatchConditions))
	if err != nil {
		c.err = fmt.Errorf("program instantiation failed: %w", err)
	}
	return c
}

// conditionVars are the values of one evaluation.
type conditionVars map[string]any

// conditionVars are the variables of a match condition for write a, its
// objects already in the version of m, the form the rules matched.
func (d *dispatcher) conditionVars(a *admission.Attributes, m dynamicadmission.Match) (conditionVars, error) {
	obj, err := toCELValue(a.Object, m.Kind)
	if err != nil {
		return nil, err
	}
	old, err := toCELValue(a.OldObject, m.Kind)
	if err != nil {
		return nil, err
	}
	req, err := newAdmissionRequest(a, m)
	if err != nil {
		return nil, err
	}
	reqVal, err := runtime.DefaultUnstructuredConverter.ToUnstructured(req)
	if err != nil {
		return nil, err
	}
	authorizerVal, requestResourceVal := dynamicadmission.AuthorizerValues(
		dynamicadmission.NewCELAuthorizer(d.deps.Authorizer), a, requestNamespace(a))
	return conditionVars{
		dynamicadmission.ObjectVar:                    obj,
		dynamicadmission.OldObjectVar:                 old,
		dynamicadmission.RequestVar:                   reqVal,
		dynamicadmission.AuthorizerVar:                authorizerVal,
		dynamicadmission.RequestResourceAuthorizerVar: requestResourceVal,
	}, nil
}

// evalConditions reports whether every condition is true. A false
// condition wins over errors (the webhook is skipped); otherwise errors
// are returned together.
func evalConditions(ctx context.Context, conds []condition, vars conditionVars) (bool, error) {
	var errs []error
	budget := int64(celconfig.RuntimeCELCostBudgetMatchConditions)
	for _, c := range conds {
		if c.err != nil {
			errs = append(errs, c.err)
			continue
		}
		val, details, err := c.program.ContextEval(ctx, map[string]any(vars))
		if details != nil && details.ActualCost() != nil {
			budget -= int64(*details.ActualCost())
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("expression '%s' resulted in error: %w", c.expression, err))
		case budget < 0:
			return false, dynamicadmission.ErrOutOfCostBudget
		case val == celtypes.False:
			return false, nil
		}
	}
	if len(errs) > 0 {
		return false, utilerrors.NewAggregate(errs)
	}
	return true, nil
}

// toCELValue turns an object of kind gvk into the map CEL reads; nil
// stays null.
func toCELValue(obj runtime.Object, gvk schema.GroupVersionKind) (any, error) {
	m, err := dynamicadmission.ObjectToUnstructured(obj, gvk)
	if m == nil || err != nil {
		return nil, err // an untyped nil, which CEL reads as null
	}
	return m, nil
}
