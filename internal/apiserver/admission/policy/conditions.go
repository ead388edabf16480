package policy

import (
	"context"
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// compiledBase is what both policy kinds share: the environment, the
// composited variables and the match conditions.
type compiledBase struct {
	env             *policyEnv
	envErr          error
	variables       []variable
	matchConditions []program
	failurePolicy   admissionregistrationv1.FailurePolicyType
}

func compileBase(hasParams, mutating bool, fp *admissionregistrationv1.FailurePolicyType, vars []admissionregistrationv1.Variable, conds []admissionregistrationv1.MatchCondition) compiledBase {
	b := compiledBase{failurePolicy: admissionregistrationv1.Fail}
	if fp != nil {
		b.failurePolicy = *fp
	}
	b.env, b.envErr = newPolicyEnv(hasParams, mutating)
	if b.envErr != nil {
		return b
	}
	opts := envOptions{params: hasParams, authorizer: true}
	for _, v := range vars {
		// Variables compile in order: each sees only those before it.
		p := b.env.compile(v.Expression, opts, cel.AnyType)
		b.env.addVariable(v.Name)
		b.variables = append(b.variables, variable{name: v.Name, program: p})
	}
	for _, c := range conds {
		b.matchConditions = append(b.matchConditions, b.env.compile(c.Expression, opts, cel.BoolType))
	}
	return b
}

// matchConditionsMatch evaluates the match conditions: any false skips the
// policy; errors fail the request under failurePolicy Fail and skip the
// policy under Ignore.
func (b *compiledBase) matchConditionsMatch(ctx context.Context, in input) (bool, error) {
	if len(b.matchConditions) == 0 {
		return true, nil
	}
	in.namespace = nil // as upstream: match conditions never see namespaceObject
	act, err := newActivation(ctx, in, b.variables)
	if err != nil {
		return b.conditionError(err)
	}
	budget := int64(celconfig.RuntimeCELCostBudgetMatchConditions)
	var errs []error
	for _, p := range b.matchConditions {
		val, evalErr, fatal := act.evaluate(ctx, p, &budget)
		if fatal != nil {
			return b.conditionError(fatal)
		}
		if evalErr != nil {
			errs = append(errs, evalErr)
			continue
		}
		if val == types.False {
			return false, nil
		}
	}
	if len(errs) > 0 {
		return b.conditionError(utilerrors.NewAggregate(errs))
	}
	return true, nil
}

func (b *compiledBase) conditionError(err error) (bool, error) {
	if b.failurePolicy == admissionregistrationv1.Ignore {
		return false, nil
	}
	return false, err
}

// failOpen reports whether errors of this policy are ignored.
func (b *compiledBase) failOpen() bool {
	return b.failurePolicy == admissionregistrationv1.Ignore
}

// configError shapes a configuration error as upstream: it names the
// binding when there is one.
func configError(err error, hasBinding bool) error {
	if hasBinding {
		return fmt.Errorf("failed to configure binding: %w", err)
	}
	return fmt.Errorf("failed to configure policy: %w", err)
}
