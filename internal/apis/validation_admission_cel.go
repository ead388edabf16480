package apis

import (
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/common"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
	"k8s.io/apiserver/pkg/cel/mutation"

	"github.com/skiff-dev/skiff/internal/apis/celcheck"
)

// The CEL environments of admission webhooks' match conditions and of
// admission policies, declared as kube-apiserver declares them: object,
// oldObject and params are dynamic, request and namespaceObject typed,
// authorizer from the Kubernetes CEL library, and a policy's variables
// typed by what each variable's expression returns.

// celVars selects the optional variables of an environment.
type celVars struct {
	params, authorizer, patchTypes bool
}

// Return types the compiled expressions must have.
var (
	celBool          = []*cel.Type{cel.BoolType}
	celString        = []*cel.Type{cel.StringType}
	celStringOrNull  = []*cel.Type{cel.StringType, cel.NullType}
	celAny           = []*cel.Type{cel.AnyType, cel.DynType}
	celApplyConfig   = []*cel.Type{cel.ObjectType("Object")}
	celJSONPatchList = []*cel.Type{cel.ListType(cel.ObjectType("JSONPatch"))}
)

// admissionCEL compiles expressions in one environment family; a policy
// with variables gets its own, since each variable adds a field to
// `variables`.
type admissionCEL struct {
	base      *environment.EnvSet
	variables *apiservercel.DeclType // nil without composition

	mu   sync.Mutex
	envs map[celVars]*environment.EnvSet
}

var (
	statelessCELOnce sync.Once
	statelessCEL     *admissionCEL
)

// newStatelessCEL returns the shared compiler without `variables`.
func newStatelessCEL() *admissionCEL {
	statelessCELOnce.Do(func() {
		statelessCEL = &admissionCEL{base: environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())}
	})
	return statelessCEL
}

// newCompositionCEL returns a compiler whose `variables` grows as
// variables are compiled with compileVariable.
func newCompositionCEL() (*admissionCEL, error) {
	vars := apiservercel.NewObjectType("kubernetes.variables", map[string]*apiservercel.DeclField{})
	base, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions:        []cel.EnvOption{cel.Variable("variables", vars.CelType())},
		DeclTypes:         []*apiservercel.DeclType{vars},
	})
	if err != nil {
		return nil, fmt.Errorf("declaring CEL variables: %w", err)
	}
	return &admissionCEL{base: base, variables: vars}, nil
}

func (c *admissionCEL) env(v celVars, stored bool) (*cel.Env, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.envs == nil {
		c.envs = map[celVars]*environment.EnvSet{}
	}
	set, ok := c.envs[v]
	if !ok {
		var err error
		if set, err = extendAdmissionEnv(c.base, v); err != nil {
			return nil, err
		}
		c.envs[v] = set
	}
	if stored {
		return set.Env(environment.StoredExpressions)
	}
	return set.Env(environment.NewExpressions)
}

func extendAdmissionEnv(base *environment.EnvSet, v celVars) (*environment.EnvSet, error) {
	request, namespace := admissionRequestType(), namespaceObjectType()
	opts := []cel.EnvOption{
		cel.Variable("object", cel.DynType),
		cel.Variable("oldObject", cel.DynType),
		cel.Variable("namespaceObject", namespace.CelType()),
		cel.Variable("request", request.CelType()),
	}
	if v.params {
		opts = append(opts, cel.Variable("params", cel.DynType))
	}
	if v.authorizer {
		opts = append(opts, cel.Variable("authorizer", library.AuthorizerType),
			cel.Variable("authorizer.requestResource", library.ResourceCheckType))
	}
	set, err := base.Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions:        opts,
		DeclTypes:         []*apiservercel.DeclType{namespace, request},
	}, environment.StrictCostOpt)
	if err != nil {
		return nil, fmt.Errorf("building the admission CEL environment: %w", err)
	}
	if v.patchTypes {
		set, err = set.Extend(environment.VersionedOptions{
			IntroducedVersion: version.MajorMinor(1, 0),
			EnvOptions: []cel.EnvOption{
				common.ResolverEnvOption(&mutation.DynamicTypeResolver{}),
				environment.UnversionedLib(library.JSONPatch),
			},
		})
		if err != nil {
			return nil, fmt.Errorf("adding the patch types: %w", err)
		}
	}
	return set, nil
}

// compile checks expr and returns upstream's field error, or nil, with
// the expression's output type (nil when it does not compile).
func (c *admissionCEL) compile(expr string, v celVars, stored bool, want []*cel.Type, fld *field.Path, shown string) (*field.Error, *cel.Type) {
	env, err := c.env(v, stored)
	if err != nil {
		return field.InternalError(fld, err), nil
	}
	ast, issues := env.Compile(expr)
	if issues != nil {
		return field.Invalid(fld, shown, "compilation failed: "+issues.String()), nil
	}
	out := ast.OutputType()
	for _, t := range want {
		if out.IsExactType(t) || cel.AnyType.IsExactType(t) {
			return nil, out
		}
	}
	if len(want) == 1 {
		return field.Invalid(fld, shown, fmt.Sprintf("must evaluate to %v but got %v", want[0].String(), out.String())), nil
	}
	return field.Invalid(fld, shown, fmt.Sprintf("must evaluate to one of %v but got %v", want, out.String())), nil
}

// compileVariable compiles a policy variable and declares it under
// `variables` for the expressions compiled after it.
func (c *admissionCEL) compileVariable(name, expr string, v celVars, stored bool, fld *field.Path) *field.Error {
	ferr, out := c.compile(expr, v, stored, celAny, fld, expr)
	if c.variables != nil {
		c.mu.Lock()
		c.variables.Fields[name] = apiservercel.NewDeclField(name, celcheck.DeclTypeOf(out), true, nil, nil)
		c.mu.Unlock()
	}
	return ferr
}

func objectType(name string, fields ...*apiservercel.DeclField) *apiservercel.DeclType {
	m := make(map[string]*apiservercel.DeclField, len(fields))
	for _, f := range fields {
		m[f.Name] = f
	}
	return apiservercel.NewObjectType(name, m)
}

func declField(name string, t *apiservercel.DeclType, required bool) *apiservercel.DeclField {
	return apiservercel.NewDeclField(name, t, required, nil, nil)
}

// admissionRequestType is the `request` variable: an AdmissionRequest.
func admissionRequestType() *apiservercel.DeclType {
	str := apiservercel.StringType
	gvk := objectType("kubernetes.GroupVersionKind",
		declField("group", str, true), declField("version", str, true), declField("kind", str, true))
	gvr := objectType("kubernetes.GroupVersionResource",
		declField("group", str, true), declField("version", str, true), declField("resource", str, true))
	strings := apiservercel.NewListType(str, -1)
	user := objectType("kubernetes.UserInfo",
		declField("username", str, false), declField("uid", str, false),
		declField("groups", strings, false),
		declField("extra", apiservercel.NewMapType(str, strings, -1), false))
	return objectType("kubernetes.AdmissionRequest",
		declField("kind", gvk, true), declField("resource", gvr, true),
		declField("subResource", str, false), declField("requestKind", gvk, true),
		declField("requestResource", gvr, true), declField("requestSubResource", str, false),
		declField("name", str, true), declField("namespace", str, false),
		declField("operation", str, true), declField("userInfo", user, true),
		declField("dryRun", apiservercel.BoolType, false), declField("options", apiservercel.DynType, false))
}

// namespaceObjectType is the `namespaceObject` variable: the request's Namespace.
func namespaceObjectType() *apiservercel.DeclType {
	str, ts := apiservercel.StringType, apiservercel.TimestampType
	strings := apiservercel.NewListType(str, -1)
	strMap := apiservercel.NewMapType(str, str, -1)
	spec := objectType("kubernetes.NamespaceSpec", declField("finalizers", strings, true))
	cond := objectType("kubernetes.NamespaceCondition",
		declField("status", str, true), declField("type", str, true), declField("lastTransitionTime", ts, true),
		declField("message", str, true), declField("reason", str, true))
	status := objectType("kubernetes.NamespaceStatus",
		declField("conditions", apiservercel.NewListType(cond, -1), true), declField("phase", str, true))
	meta := objectType("kubernetes.NamespaceMetadata",
		declField("name", str, true), declField("generateName", str, true), declField("namespace", str, true),
		declField("labels", strMap, true), declField("annotations", strMap, true), declField("UID", str, true),
		declField("creationTimestamp", ts, true), declField("deletionGracePeriodSeconds", apiservercel.IntType, true),
		declField("deletionTimestamp", ts, true), declField("generation", apiservercel.IntType, true),
		declField("resourceVersion", str, true), declField("finalizers", strings, true))
	return objectType("kubernetes.Namespace",
		declField("metadata", meta, true), declField("spec", spec, true), declField("status", status, true))
}
