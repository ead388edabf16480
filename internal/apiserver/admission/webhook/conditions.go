package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/version"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

// The variables a matchCondition sees, as upstream names them.
const (
	objectVar                    = "object"
	oldObjectVar                 = "oldObject"
	requestVar                   = "request"
	authorizerVar                = "authorizer"
	requestResourceAuthorizerVar = "authorizer.requestResource"
)

// matchConditionsCostBudget is upstream's runtime cost budget for all the
// match conditions of one webhook (celconfig.RuntimeCELCostBudgetMatchConditions).
const matchConditionsCostBudget = 2500000

// conditionEnv is the CEL environment of match conditions: Kubernetes' base
// libraries plus the variables above. Built once; it is costly.
var conditionEnv = sync.OnceValues(func() (*cel.Env, error) {
	requestType := admissionRequestType()
	set, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(
		environment.VersionedOptions{
			IntroducedVersion: version.MajorMinor(1, 0),
			EnvOptions: []cel.EnvOption{
				cel.Variable(objectVar, cel.DynType),
				cel.Variable(oldObjectVar, cel.DynType),
				cel.Variable(requestVar, requestType.CelType()),
				cel.Variable(authorizerVar, library.AuthorizerType),
				cel.Variable(requestResourceAuthorizerVar, library.ResourceCheckType),
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

// admissionRequestType declares the fields of the request variable, as
// upstream's kubernetes.AdmissionRequest type.
func admissionRequestType() *apiservercel.DeclType {
	object := func(name string, fields ...*apiservercel.DeclField) *apiservercel.DeclType {
		m := make(map[string]*apiservercel.DeclField, len(fields))
		for _, f := range fields {
			m[f.Name] = f
		}
		return apiservercel.NewObjectType(name, m)
	}
	field := func(name string, t *apiservercel.DeclType, required bool) *apiservercel.DeclField {
		return apiservercel.NewDeclField(name, t, required, nil, nil)
	}
	str := apiservercel.StringType
	strings := apiservercel.NewListType(str, -1)
	gvk := object("kubernetes.GroupVersionKind",
		field("group", str, true), field("version", str, true), field("kind", str, true))
	gvr := object("kubernetes.GroupVersionResource",
		field("group", str, true), field("version", str, true), field("resource", str, true))
	userInfo := object("kubernetes.UserInfo",
		field("username", str, false), field("uid", str, false), field("groups", strings, false),
		field("extra", apiservercel.NewMapType(str, strings, -1), false))
	return object("kubernetes.AdmissionRequest",
		field("kind", gvk, true), field("resource", gvr, true), field("subResource", str, false),
		field("requestKind", gvk, true), field("requestResource", gvr, true), field("requestSubResource", str, false),
		field("name", str, true), field("namespace", str, false), field("operation", str, true),
		field("userInfo", userInfo, true), field("dryRun", apiservercel.BoolType, false),
		field("options", apiservercel.DynType, false))
}

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
	if !ast.OutputType().IsExactType(cel.BoolType) {
		c.err = fmt.Errorf("compilation error: must evaluate to bool but got %v", ast.OutputType())
		return c
	}
	c.program, err = env.Program(ast,
		cel.InterruptCheckFrequency(100),
		cel.CostLimit(matchConditionsCostBudget))
	if err != nil {
		c.err = fmt.Errorf("program instantiation failed: %w", err)
	}
	return c
}

// conditionVars are the values of one evaluation.
type conditionVars map[string]any

// conditionVars are the variables of a match condition for write a.
func (d *dispatcher) conditionVars(a *admission.Attributes) (conditionVars, error) {
	obj, err := toCELValue(a.Object, a.Kind)
	if err != nil {
		return nil, err
	}
	old, err := toCELValue(a.OldObject, a.Kind)
	if err != nil {
		return nil, err
	}
	req, err := newAdmissionRequest(a)
	if err != nil {
		return nil, err
	}
	reqVal, err := runtime.DefaultUnstructuredConverter.ToUnstructured(req)
	if err != nil {
		return nil, err
	}
	u := userInfoOf(a.User)
	authzr := celAuthorizer{d.deps.Authorizer}
	return conditionVars{
		objectVar:                    obj,
		oldObjectVar:                 old,
		requestVar:                   reqVal,
		authorizerVar:                library.NewAuthorizerVal(u, authzr),
		requestResourceAuthorizerVar: library.NewResourceAuthorizerVal(u, authzr, requestResource{a}),
	}, nil
}

// evalConditions reports whether every condition is true. A false
// condition wins over errors (the webhook is skipped); otherwise errors
// are returned together.
func evalConditions(ctx context.Context, conds []condition, vars conditionVars) (bool, error) {
	var errs []error
	budget := int64(matchConditionsCostBudget)
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
			return false, errors.New("validation failed due to running out of cost budget, no further validation rules will be run")
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
	if obj == nil {
		return nil, nil
	}
	if u, ok := obj.(runtime.Unstructured); ok {
		return u.UnstructuredContent(), nil // carries its own apiVersion and kind
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	m["apiVersion"], m["kind"] = gvk.GroupVersion().String(), gvk.Kind
	return m, nil
}
