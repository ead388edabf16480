package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/common"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
	celopenapi "k8s.io/apiserver/pkg/cel/openapi"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-dev/skiff/internal/apis/celcheck"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
)

// maxTypesToCheck is upstream's cap: once one resource rule has resolved
// this many kinds, no further kinds (or rules) are collected.
const maxTypesToCheck = 10

// TypeSource is what type checking needs from the cluster: the kinds a
// resource rule names and the OpenAPI schema of a kind.
type TypeSource struct {
	// Mapper maps a group/version/resource to its kinds. If it can be
	// reset (meta.ResettableRESTMapper), a miss resets it once per policy,
	// for resources added since it last looked.
	Mapper meta.RESTMapper
	// Schemas resolves a kind's schema; unresolvable kinds are skipped.
	Schemas resolver.SchemaResolver
}

// builtinSchemas resolves the built-in kinds from the OpenAPI definitions
// Skiff serves, as upstream's controller resolves them from its own.
var builtinSchemas = sync.OnceValue(func() *resolver.DefinitionsSchemaResolver {
	return resolver.NewDefinitionsSchemaResolver(openapi.GetOpenAPIDefinitions, scheme.Scheme)
})

// BuiltinSchemas resolves built-in kinds only.
func BuiltinSchemas() resolver.SchemaResolver { return builtinSchemas() }

// BuiltinSchemasAnd resolves built-in kinds from Skiff's definitions and any
// other (custom resources) with secondary, typically a
// resolver.ClientDiscoveryResolver reading /openapi/v3.
func BuiltinSchemasAnd(secondary resolver.SchemaResolver) resolver.SchemaResolver {
	return builtinSchemas().Combine(secondary)
}

// TypeCheck type-checks a ValidatingAdmissionPolicy's validations
// (expression and messageExpression) against the schemas of the kinds its
// resource rules name without wildcards, and of its paramKind, as upstream's
// status controller does. Variables are compiled first so that expressions
// see their types. Each warning's text is one "<gvk>: <CEL issues>\n" per
// kind the expression failed for, joined by newlines. The policy is not
// changed; nil means no warnings.
func TypeCheck(p *admissionregistrationv1.ValidatingAdmissionPolicy, src TypeSource) []admissionregistrationv1.ExpressionWarning {
	tc := newTypeCheckContext(p, src)
	var warnings []admissionregistrationv1.ExpressionWarning
	path := field.NewPath("spec", "validations")
	for i, v := range p.Spec.Validations {
		if w := tc.check(v.Expression); w != "" {
			warnings = append(warnings, admissionregistrationv1.ExpressionWarning{
				FieldRef: path.Index(i).Child("expression").String(), Warning: w,
			})
		}
		if v.MessageExpression == "" {
			continue
		}
		if w := tc.check(v.MessageExpression); w != "" {
			warnings = append(warnings, admissionregistrationv1.ExpressionWarning{
				FieldRef: path.Index(i).Child("messageExpression").String(), Warning: w,
			})
		}
	}
	return warnings
}

// typeCheckContext is a policy's resolved types.
type typeCheckContext struct {
	gvks      []schema.GroupVersionKind
	objects   []*apiservercel.DeclType
	hasParams bool
	params    *apiservercel.DeclType // nil: params is dyn
	variables []admissionregistrationv1.Variable
	envs      []*cel.Env // per kind, built on first use; nil if that failed
	built     bool
}

func newTypeCheckContext(p *admissionregistrationv1.ValidatingAdmissionPolicy, src TypeSource) *typeCheckContext {
	tc := &typeCheckContext{variables: p.Spec.Variables}
	for _, gvk := range typesToCheck(p, src.Mapper) {
		t, err := declTypeOf(src.Schemas, gvk, gvk.Kind)
		if err != nil {
			// A kind without a schema is not checked; a type checking
			// failure must never change what the policy does.
			logResolveError(err, gvk)
			continue
		}
		// A schema CEL cannot type (t nil) leaves object dyn, as upstream.
		tc.gvks = append(tc.gvks, gvk)
		tc.objects = append(tc.objects, t)
	}
	if pk := p.Spec.ParamKind; pk != nil {
		if gv, err := schema.ParseGroupVersion(pk.APIVersion); err == nil {
			gvk := gv.WithKind(pk.Kind)
			tc.hasParams = !gvk.Empty()
			if tc.hasParams {
				// Named apart from the object type: both may be one kind.
				t, err := declTypeOf(src.Schemas, gvk, "params."+gvk.Kind)
				logResolveError(err, gvk)
				tc.params = t
			}
		}
	}
	return tc
}

func logResolveError(err error, gvk schema.GroupVersionKind) {
	if err != nil && !errors.Is(err, resolver.ErrSchemaNotFound) {
		slog.Debug("admission policy type checking: schema resolution failed", "gvk", gvk, "err", err)
	}
}

func declTypeOf(schemas resolver.SchemaResolver, gvk schema.GroupVersionKind, name string) (*apiservercel.DeclType, error) {
	if schemas == nil {
		return nil, resolver.ErrSchemaNotFound
	}
	s, err := schemas.ResolveSchema(gvk)
	if err != nil {
		return nil, err
	}
	t := common.SchemaDeclType(&celopenapi.Schema{Schema: s}, true)
	if t == nil {
		return nil, nil
	}
	return t.MaybeAssignTypeName(name), nil
}

// check compiles expr once per kind and reports the kinds it fails for.
func (tc *typeCheckContext) check(expr string) string {
	if !tc.built {
		tc.built = true
		for i, gvk := range tc.gvks {
			env, err := tc.env(tc.objects[i])
			if err != nil {
				slog.Debug("admission policy type checking: environment", "gvk", gvk, "err", err)
			}
			tc.envs = append(tc.envs, env)
		}
	}
	var msgs []string
	for i, gvk := range tc.gvks {
		env := tc.envs[i]
		if env == nil {
			continue
		}
		if _, issues := env.Compile(expr); issues != nil && issues.Err() != nil {
			msgs = append(msgs, fmt.Sprintf("%v: %s\n", gvk, issues.String()))
		}
	}
	return strings.Join(msgs, "\n")
}

// env is the environment of one kind: object and oldObject of its type,
// params of paramKind's, and the policy's variables with the types their
// expressions compile to (dyn for those that fail).
func (tc *typeCheckContext) env(object *apiservercel.DeclType) (*cel.Env, error) {
	reqType, nsType := declTypes()
	varsType := apiservercel.NewObjectType("kubernetes.variables", map[string]*apiservercel.DeclField{})
	decls := []*apiservercel.DeclType{nsType, reqType, varsType}
	opts := []cel.EnvOption{
		cel.Variable(varNamespace, nsType.CelType()),
		cel.Variable(dynamicadmission.RequestVar, reqType.CelType()),
		cel.Variable(varVariables, varsType.CelType()),
		// Upstream declares only authorizer here, so it warns about every
		// use of authorizer.requestResource; declaring both avoids that.
		cel.Variable(dynamicadmission.AuthorizerVar, library.AuthorizerType),
		cel.Variable(dynamicadmission.RequestResourceAuthorizerVar, library.ResourceCheckType),
	}
	objType := cel.DynType
	if object != nil {
		decls = append(decls, object)
		objType = object.CelType()
	}
	opts = append(opts, cel.Variable(dynamicadmission.ObjectVar, objType), cel.Variable(dynamicadmission.OldObjectVar, objType))
	if tc.hasParams {
		paramsType := cel.DynType
		if tc.params != nil {
			decls = append(decls, tc.params)
			paramsType = tc.params.CelType()
		}
		opts = append(opts, cel.Variable(varParams, paramsType))
	}
	set, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Extend(environment.VersionedOptions{
		IntroducedVersion: version.MajorMinor(1, 0),
		EnvOptions:        opts,
		DeclTypes:         decls,
	})
	if err != nil {
		return nil, err
	}
	env, err := set.Env(environment.StoredExpressions)
	if err != nil {
		return nil, err
	}
	// Variables are declared in order: each sees those before it. The
	// environment reads the variables type's fields when it checks.
	for _, v := range tc.variables {
		var out *cel.Type
		if ast, issues := env.Compile(v.Expression); issues == nil || issues.Err() == nil {
			out = ast.OutputType()
		}
		varsType.Fields[v.Name] = apiservercel.NewDeclField(v.Name, celcheck.DeclTypeOf(out), true, nil, nil)
	}
	return env, nil
}

// typesToCheck are the kinds the policy's resource rules name with no
// wildcard group or version, sorted by group, version and kind. Wildcard
// and subresource entries of resources are skipped; the mapper is reset at
// most once per policy on a miss.
func typesToCheck(p *admissionregistrationv1.ValidatingAdmissionPolicy, mapper meta.RESTMapper) []schema.GroupVersionKind {
	mc := p.Spec.MatchConstraints
	if mc == nil || mapper == nil {
		return nil
	}
	gvks := sets.New[schema.GroupVersionKind]()
	reset := false
	for _, rule := range mc.ResourceRules {
		groups := explicit(rule.APIGroups, "*")
		versions := explicit(rule.APIVersions, "*")
		var resources []string
		for _, r := range rule.Resources {
			if !strings.ContainsAny(r, "*/") {
				resources = append(resources, r)
			}
		}
		if len(groups) == 0 || len(versions) == 0 || len(resources) == 0 {
			continue
		}
		slices.Sort(groups)
		slices.Sort(versions)
		slices.Sort(resources)
		count := 0
		for _, g := range groups {
			for _, v := range versions {
				for _, r := range resources {
					gvr := schema.GroupVersionResource{Group: g, Version: v, Resource: r}
					kinds, err := mapper.KindsFor(gvr)
					if err != nil {
						if reset {
							continue
						}
						reset = true
						if rm, ok := mapper.(meta.ResettableRESTMapper); ok {
							rm.Reset()
						}
						if kinds, err = mapper.KindsFor(gvr); err != nil {
							continue
						}
					}
					for _, k := range kinds {
						if k.Empty() {
							continue
						}
						gvks.Insert(k)
						// Counted per rule, duplicates too, as upstream.
						if count++; count == maxTypesToCheck {
							return sortedGVKs(gvks)
						}
					}
				}
			}
		}
	}
	return sortedGVKs(gvks)
}

// explicit returns list, or nil if any entry contains wildcard.
func explicit(list []string, wildcard string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if strings.Contains(s, wildcard) {
			return nil
		}
		out = append(out, s)
	}
	return out
}

func sortedGVKs(s sets.Set[schema.GroupVersionKind]) []schema.GroupVersionKind {
	if s.Len() == 0 {
		return nil
	}
	list := s.UnsortedList()
	slices.SortFunc(list, func(a, b schema.GroupVersionKind) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := strings.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return list
}
