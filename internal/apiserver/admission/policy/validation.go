package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
)

// compiledValidating is a ValidatingAdmissionPolicy ready to evaluate.
type compiledValidating struct {
	compiledBase
	validations      []compiledValidation
	auditAnnotations []program
}

type compiledValidation struct {
	admissionregistrationv1.Validation
	expr    program
	message *program // nil without messageExpression
}

// decision is the outcome of one validation (or of an error standing in
// for them).
type decision struct {
	deny    bool
	message string
	reason  metav1.StatusReason
}

func compileValidating(p *vap) *compiledValidating {
	hasParams := p.Spec.ParamKind != nil
	c := &compiledValidating{compiledBase: compileBase(hasParams, false, p.Spec.FailurePolicy, p.Spec.Variables, p.Spec.MatchConditions)}
	if c.envErr != nil {
		return c
	}
	withAuthz := envOptions{params: hasParams, authorizer: true}
	// Message expressions cannot ask the authorizer, as upstream.
	noAuthz := envOptions{params: hasParams}
	for _, v := range p.Spec.Validations {
		cv := compiledValidation{Validation: v, expr: c.env.compile(v.Expression, withAuthz, cel.BoolType)}
		if v.MessageExpression != "" {
			m := c.env.compile(v.MessageExpression, noAuthz, cel.StringType)
			cv.message = &m
		}
		c.validations = append(c.validations, cv)
	}
	for _, aa := range p.Spec.AuditAnnotations {
		c.auditAnnotations = append(c.auditAnnotations, c.env.compile(aa.ValueExpression, withAuthz, cel.StringType, cel.NullType))
	}
	return c
}

// validate evaluates the policy for one binding and param. decisions are
// subject to the binding's validationActions; auditDenials (errors of audit
// annotations under failurePolicy Fail) refuse regardless.
func (c *compiledValidating) validate(ctx context.Context, in input) (decisions, auditDenials []decision) {
	onError := func(err error) []decision {
		return []decision{{deny: !c.failOpen(), message: err.Error()}}
	}
	if c.envErr != nil {
		return onError(c.envErr), nil
	}
	matches, err := c.matchConditionsMatch(ctx, in)
	if err != nil {
		return onError(err), nil
	}
	if !matches {
		return nil, nil
	}

	act, err := newActivation(ctx, in, c.variables)
	if err != nil {
		return onError(err), nil
	}
	budget := int64(celconfig.RuntimeCELCostBudget)
	results := make([]ref.Val, len(c.validations))
	evalErrs := make([]error, len(c.validations))
	for i, v := range c.validations {
		var fatal error
		results[i], evalErrs[i], fatal = act.evaluate(ctx, v.expr, &budget)
		if fatal != nil {
			return onError(fatal), nil
		}
	}
	messages, messagesErr := c.messages(ctx, in, budget)

	decisions = make([]decision, len(c.validations))
	for i, v := range c.validations {
		switch {
		case evalErrs[i] != nil:
			decisions[i] = decision{deny: !c.failOpen(), message: evalErrs[i].Error()}
		case messagesErr != nil:
			decisions[i] = decision{deny: !c.failOpen(), message: fmt.Sprintf("failed messageExpression: %s", messagesErr)}
		case results[i] != types.True:
			decisions[i] = decision{deny: true, reason: metav1.StatusReasonInvalid, message: failureMessage(v, messages[i])}
			if v.Reason != nil {
				decisions[i].reason = *v.Reason
			}
		}
	}

	denials, err := c.auditAnnotationDenials(ctx, in)
	if err != nil {
		return onError(err), nil
	}
	return decisions, denials
}

// messages evaluates the message expressions with what is left of the
// budget. A fatal error (out of budget) turns every validation into an
// error, as upstream; a failing expression only loses its message.
func (c *compiledValidating) messages(ctx context.Context, in input, budget int64) ([]string, error) {
	out := make([]string, len(c.validations))
	in.authz = nil
	var act *activation
	for i, v := range c.validations {
		if v.message == nil {
			continue
		}
		if act == nil {
			var err error
			if act, err = newActivation(ctx, in, c.variables); err != nil {
				return out, nil
			}
		}
		val, evalErr, fatal := act.evaluate(ctx, *v.message, &budget)
		if fatal != nil {
			return nil, fatal
		}
		if evalErr != nil || val == nil {
			continue
		}
		if s, ok := val.Value().(string); ok {
			out[i] = s
		}
	}
	return out, nil
}

// failureMessage picks a failed validation's message: the messageExpression
// result when usable (one line, at most 5 KiB), else message, else the
// expression.
func failureMessage(v compiledValidation, fromExpression string) string {
	msg := strings.TrimSpace(fromExpression)
	if len(msg) > celconfig.MaxEvaluatedMessageExpressionSizeBytes || strings.Contains(msg, "\n") {
		msg = ""
	}
	if msg == "" {
		msg = strings.TrimSpace(v.Message)
	}
	if msg == "" {
		msg = fmt.Sprintf("failed expression: %v", strings.TrimSpace(v.Expression))
	}
	return msg
}

// auditAnnotationDenials evaluates the audit annotations for their errors
// only: Skiff has no audit log to publish them to.
func (c *compiledValidating) auditAnnotationDenials(ctx context.Context, in input) ([]decision, error) {
	if len(c.auditAnnotations) == 0 {
		return nil, nil
	}
	in.authz = nil
	act, err := newActivation(ctx, in, c.variables)
	if err != nil {
		return nil, err
	}
	budget := int64(celconfig.RuntimeCELCostBudget)
	var out []decision
	for _, p := range c.auditAnnotations {
		val, evalErr, fatal := act.evaluate(ctx, p, &budget)
		switch {
		case fatal != nil:
			return nil, fatal
		case evalErr != nil:
			if !c.failOpen() {
				out = append(out, decision{deny: true, message: evalErr.Error()})
			}
		case val.Type() != types.StringType && val.Type() != types.NullType:
			out = append(out, decision{deny: true, message: fmt.Sprintf(
				"valueExpression '%v' resulted in unsupported return type: %v. Return type must be either string or null.", p.expression, val.Type())})
		}
	}
	return out, nil
}
