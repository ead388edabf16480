package policy

import (
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/common"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
	"k8s.io/apiserver/pkg/cel/mutation"

	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// The CEL variables only admission policies have, as upstream names them;
// dynamicadmission names those webhooks have too.
const (
	varParams    = "params"
	varNamespace = "namespaceObject"
	varVariables = "variables"
)

// envOptions select the optional variables of an environment.
type envOptions struct {
	params     bool
	authorizer bool
	patchTypes bool // Object{...} and JSONPatch{...} for mutations
}

// policyEnv holds the environments of one policy. Each policy gets its own
// `variables` type, whose fields are its composited variables.
type policyEnv struct {
	variablesType *apiservercel.DeclType
	envs          map[envOptions]*cel.Env
}

var (
	declTypesOnce sync.Once
	requestType   *apiservercel.DeclType
	namespaceType *apiservercel.DeclType
)

func declTypes() (*apiservercel.DeclType, *apiservercel.DeclType) {
	declTypesOnce.Do(func() {
		requestType = dynamicadmission.AdmissionRequestType()
		namespaceType = buildNamespaceType()
	})
	return requestType, namespaceType
}

// newPolicyEnv builds the environments a policy's expressions compile in:
// upstream's base library set at the default compatibility version, with
// strict cost estimation and its per-call cost limit.
func newPolicyEnv(params, mutating bool) (*policyEnv, error) {
	reqType, nsType := declTypes()
	varsType := apiservercel.NewObjectType("kubernetes.variables", map[string]*apiservercel.DeclField{})
	base, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions: []cel.EnvOption{
			cel.Variable(dynamicadmission.ObjectVar, cel.DynType),
			cel.Variable(dynamicadmission.OldObjectVar, cel.DynType),
			cel.Variable(varNamespace, nsType.CelType()),
			cel.Variable(dynamicadmission.RequestVar, reqType.CelType()),
			cel.Variable(varVariables, varsType.CelType()),
		},
		DeclTypes: []*apiservercel.DeclType{nsType, reqType, varsType},
	}, environment.StrictCostOpt)
	if err != nil {
		return nil, fmt.Errorf("environment misconfigured: %w", err)
	}
	pe := &policyEnv{variablesType: varsType, envs: map[envOptions]*cel.Env{}}
	for _, authz := range []bool{false, true} {
		for _, patch := range []bool{false, true} {
			if patch && !mutating {
				continue
			}
			opts := envOptions{params: params, authorizer: authz, patchTypes: patch}
			env, err := extendEnv(base, opts)
			if err != nil {
				return nil, err
			}
			pe.envs[opts] = env
		}
	}
	return pe, nil
}

func extendEnv(base *environment.EnvSet, opts envOptions) (*cel.Env, error) {
	var envOpts []cel.EnvOption
	if opts.params {
		envOpts = append(envOpts, cel.Variable(varParams, cel.DynType))
	}
	if opts.authorizer {
		envOpts = append(envOpts,
			cel.Variable(dynamicadmission.AuthorizerVar, library.AuthorizerType),
			cel.Variable(dynamicadmission.RequestResourceAuthorizerVar, library.ResourceCheckType))
	}
	if opts.patchTypes {
		envOpts = append(envOpts,
			common.ResolverEnvOption(&mutation.DynamicTypeResolver{}))
	}
	set := base
	if len(envOpts) > 0 {
		var err error
		vo := environment.VersionedOptions{IntroducedVersion: version.MajorMinor(1, 0), EnvOptions: envOpts}
		if opts.patchTypes {
			set, err = base.Extend(vo, environment.VersionedOptions{
				IntroducedVersion: version.MajorMinor(1, 0),
				EnvOptions:        []cel.EnvOption{environment.UnversionedLib(library.JSONPatch)},
			})
		} else {
			set, err = base.Extend(vo)
		}
		if err != nil {
			return nil, fmt.Errorf("environment misconfigured: %w", err)
		}
	}
	env, err := set.Env(environment.StoredExpressions)
	if err != nil {
		return nil, fmt.Errorf("unexpected error loading CEL environment: %w", err)
	}
	return env, nil
}

// program is one compiled expression, or why it did not compile.
type program struct {
	expression string
	prog       cel.Program
	err        error
}

// compile compiles expr in the environment opts selects and checks its
// result type against want (any of them; cel.AnyType accepts all).
func (pe *policyEnv) compile(expr string, opts envOptions, want ...*cel.Type) program {
	p := program{expression: expr}
	env := pe.envs[opts]
	ast, issues := env.Compile(expr)
	if issues != nil && issues.Err() != nil {
		p.err = fmt.Errorf("compilation failed: %s", issues.String())
		return p
	}
	if !returnTypeAllowed(ast.OutputType(), want) {
		if len(want) == 1 {
			p.err = fmt.Errorf("must evaluate to %v but got %v", want[0].String(), ast.OutputType().String())
		} else {
			p.err = fmt.Errorf("must evaluate to one of %v but got %v", want, ast.OutputType().String())
		}
		return p
	}
	prog, err := env.Program(ast, cel.InterruptCheckFrequency(celconfig.CheckFrequency))
	if err != nil {
		p.err = fmt.Errorf("program instantiation failed: %w", err)
		return p
	}
	p.prog = prog
	return p
}

// returnTypeAllowed accepts a result of a wanted type, or of type dyn
// (known only at run time, as with variables), as upstream's compiler does.
func returnTypeAllowed(got *cel.Type, want []*cel.Type) bool {
	if got.IsExactType(cel.AnyType) || got.IsExactType(cel.DynType) {
		return true
	}
	for _, w := range want {
		if got.IsExactType(w) || cel.AnyType.IsExactType(w) {
			return true
		}
	}
	return false
}

// addVariable declares a composited variable on the policy's `variables`
// type. Its type is dyn: expressions are not type-checked against schemas.
func (pe *policyEnv) addVariable(name string) {
	pe.variablesType.Fields[name] = apiservercel.NewDeclField(name, apiservercel.DynType, true, nil, nil)
}

// buildNamespaceType describes the Namespace fields CEL sees; managed
// fields, owner references and the like are left out.
func buildNamespaceType() *apiservercel.DeclType {
	str, ts, list := apiservercel.StringType, apiservercel.TimestampType, apiservercel.NewListType
	strMap := apiservercel.NewMapType(str, str, -1)
	condition := dynamicadmission.DeclObject("kubernetes.NamespaceCondition",
		dynamicadmission.RequiredField("status", str), dynamicadmission.RequiredField("type", str), dynamicadmission.RequiredField("lastTransitionTime", ts), dynamicadmission.RequiredField("message", str), dynamicadmission.RequiredField("reason", str))
	return dynamicadmission.DeclObject("kubernetes.Namespace",
		dynamicadmission.RequiredField("metadata", dynamicadmission.DeclObject("kubernetes.NamespaceMetadata",
			dynamicadmission.RequiredField("name", str), dynamicadmission.RequiredField("generateName", str), dynamicadmission.RequiredField("namespace", str),
			dynamicadmission.RequiredField("labels", strMap), dynamicadmission.RequiredField("annotations", strMap), dynamicadmission.RequiredField("UID", str),
			dynamicadmission.RequiredField("creationTimestamp", ts), dynamicadmission.RequiredField("deletionGracePeriodSeconds", apiservercel.IntType),
			dynamicadmission.RequiredField("deletionTimestamp", ts), dynamicadmission.RequiredField("generation", apiservercel.IntType),
			dynamicadmission.RequiredField("resourceVersion", str), dynamicadmission.RequiredField("finalizers", list(str, -1)))),
		dynamicadmission.RequiredField("spec", dynamicadmission.DeclObject("kubernetes.NamespaceSpec", dynamicadmission.RequiredField("finalizers", list(str, -1)))),
		dynamicadmission.RequiredField("status", dynamicadmission.DeclObject("kubernetes.NamespaceStatus",
			dynamicadmission.RequiredField("conditions", list(condition, -1)), dynamicadmission.RequiredField("phase", str))))
}
