package policy

import (
	"context"
	"fmt"
	"math"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/common"
	"k8s.io/apiserver/pkg/cel/lazy"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// variable is a compiled composited variable.
type variable struct {
	name string
	program
}

// activation resolves the CEL variables of one evaluation.
type activation struct {
	object, oldObject, params, request, namespace any
	authorizer, requestResource                   any
	variables                                     *lazy.MapValue
	// variableCost accumulates the cost of variables evaluated lazily
	// during the current expression.
	variableCost int64
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case dynamicadmission.ObjectVar:
		return a.object, true
	case dynamicadmission.OldObjectVar:
		return a.oldObject, true
	case varParams:
		return a.params, true
	case dynamicadmission.RequestVar:
		return a.request, true
	case varNamespace:
		return a.namespace, true
	case dynamicadmission.AuthorizerVar:
		return a.authorizer, a.authorizer != nil
	case dynamicadmission.RequestResourceAuthorizerVar:
		return a.requestResource, a.requestResource != nil
	case varVariables:
		return a.variables, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// input is what an activation is built from.
type input struct {
	attrs     *admission.Attributes
	object    runtime.Object // the (possibly mutated) object; nil on delete
	matchKind metav1.GroupVersionKind
	matchRes  metav1.GroupVersionResource
	params    *unstructured.Unstructured
	namespace *corev1.Namespace
	authz     authorizer.UnconditionalAuthorizer // nil: no `authorizer` variable
}

// newActivation converts the request to CEL values. Typed objects become
// unstructured maps, as upstream's dynamic (schemaless) evaluation sees them.
func newActivation(ctx context.Context, in input, vars []variable) (*activation, error) {
	obj, err := toCELObject(in.object, in.attrs)
	if err != nil {
		return nil, fmt.Errorf("failed to prepare object variable for evaluation: %w", err)
	}
	old, err := toCELObject(in.attrs.OldObject, in.attrs)
	if err != nil {
		return nil, fmt.Errorf("failed to prepare oldObject variable for evaluation: %w", err)
	}
	a := &activation{
		object:    obj,
		oldObject: old,
		params:    types.NullValue,
		request:   common.SchemalessTypedToVal(admissionRequest(in)),
		namespace: types.NullValue,
	}
	if in.params != nil {
		a.params = types.DefaultTypeAdapter.NativeToValue(in.params.Object)
	}
	if in.namespace != nil {
		a.namespace = common.SchemalessTypedToVal(namespaceObject(in.namespace))
	}
	if in.authz != nil {
		a.authorizer, a.requestResource = dynamicadmission.AuthorizerValues(in.authz, in.attrs, requestNamespace(in.attrs))
	}
	a.variables = lazy.NewMapValue(types.NewObjectType("kubernetes.variables"))
	for _, v := range vars {
		a.variables.Append(v.name, func(*lazy.MapValue) ref.Val { return a.evalVariable(ctx, v) })
	}
	return a, nil
}

func (a *activation) evalVariable(ctx context.Context, v variable) ref.Val {
	if v.err != nil {
		return types.NewErr("composited variable %q fails to compile: %v", v.name, v.err)
	}
	val, details, err := v.prog.ContextEval(ctx, a)
	if details == nil || details.ActualCost() == nil {
		return types.NewErr("unable to calculate cost of variable %q", v.name)
	}
	a.variableCost = addCost(a.variableCost, *details.ActualCost())
	if err != nil {
		return types.NewErr("composited variable %q fails to evaluate: %v", v.name, err)
	}
	return val
}

func addCost(total int64, cost uint64) int64 {
	if cost > math.MaxInt64 || total > math.MaxInt64-int64(cost) {
		return math.MaxInt64
	}
	return total + int64(cost)
}

// evaluate runs p against budget, which it charges with the cost of the
// expression and of the variables it evaluated. An expression error is
// returned in evalErr; dynamicadmission.ErrOutOfCostBudget (or an internal failure) in fatal.
func (a *activation) evaluate(ctx context.Context, p program, budget *int64) (val ref.Val, evalErr, fatal error) {
	if p.err != nil {
		return nil, fmt.Errorf("compilation error: %w", p.err), nil
	}
	val, details, err := p.prog.ContextEval(ctx, a)
	varCost := a.variableCost
	a.variableCost = 0
	if varCost > *budget {
		return nil, nil, dynamicadmission.ErrOutOfCostBudget
	}
	*budget -= varCost
	if details == nil || details.ActualCost() == nil {
		return nil, nil, fmt.Errorf("runtime cost could not be calculated for expression: %v, no further expression will be run", p.expression)
	}
	cost := *details.ActualCost()
	if cost > math.MaxInt64 || int64(cost) > *budget {
		return nil, nil, dynamicadmission.ErrOutOfCostBudget
	}
	*budget -= int64(cost)
	if err != nil {
		return nil, fmt.Errorf("expression '%v' resulted in error: %v", p.expression, err), nil
	}
	return val, nil, nil
}

// toCELObject converts an object to the map CEL sees, with apiVersion and
// kind set even when the typed object carries no TypeMeta.
func toCELObject(obj runtime.Object, a *admission.Attributes) (ref.Val, error) {
	if obj == nil {
		return types.NullValue, nil
	}
	m, err := dynamicadmission.ObjectToUnstructured(obj, a.Kind)
	if err != nil {
		return nil, err
	}
	return types.DefaultTypeAdapter.NativeToValue(m), nil
}

// admissionRequest is the `request` variable: the request as a webhook
// would see it, with the kind and resource the policy matched.
func admissionRequest(in input) *admissionv1.AdmissionRequest {
	return dynamicadmission.NewAdmissionRequest(in.attrs, requestNamespace(in.attrs), in.matchKind, in.matchRes)
}

// namespaceObject keeps the Namespace fields CEL may see.
func namespaceObject(ns *corev1.Namespace) *corev1.Namespace {
	return &corev1.Namespace{
		Spec:   ns.Spec,
		Status: ns.Status,
		ObjectMeta: metav1.ObjectMeta{
			Name:                       ns.Name,
			GenerateName:               ns.GenerateName,
			Namespace:                  ns.Namespace,
			UID:                        ns.UID,
			ResourceVersion:            ns.ResourceVersion,
			Generation:                 ns.Generation,
			CreationTimestamp:          ns.CreationTimestamp,
			DeletionTimestamp:          ns.DeletionTimestamp,
			DeletionGracePeriodSeconds: ns.DeletionGracePeriodSeconds,
			Labels:                     ns.Labels,
			Annotations:                ns.Annotations,
			Finalizers:                 ns.Finalizers,
		},
	}
}
